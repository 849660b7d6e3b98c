#!/usr/bin/env bash
# Build the Helm CLI from the Go module proxy into .state/bin/helm (no download site needed).
#
#   dev/packaging/install-helm.sh            # idempotent: skips when the wanted version is there
#   HELM_VERSION=v3.21.4 dev/packaging/install-helm.sh
#
# `go install` builds from the module's own go.mod (its pinned dependency versions);
# GOFLAGS=-mod=mod lets it resolve what the proxy serves. Needs Go (>= the module's go line).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.state/bin"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
LOG="$ROOT/.state/logs/helm-build.log"

say() { printf 'packaging: %s\n' "$*"; }

mkdir -p "$BIN" "$(dirname "$LOG")"
if [[ -x $BIN/helm ]] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  say "helm $HELM_VERSION: present ($BIN/helm)"
  exit 0
fi
command -v go >/dev/null || {
  printf 'packaging: error: Go is needed to build helm (apt-get install golang-go, or /usr/local/go)\n' >&2
  exit 1
}
say "helm $HELM_VERSION: building from the Go module proxy (log: ${LOG#"$ROOT"/})"
started=$SECONDS
# The version string helm reports is set by its Makefile through -ldflags; do the same.
if ! GOBIN="$BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$LOG" 2>&1; then
  tail -n 20 "$LOG" >&2
  printf 'packaging: error: building helm failed; see %s\n' "$LOG" >&2
  exit 1
fi
say "helm $("$BIN/helm" version --short): built in $((SECONDS - started)) s"
