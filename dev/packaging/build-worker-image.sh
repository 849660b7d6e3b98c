#!/usr/bin/env bash
# Build the worker image from ./Dockerfile, skipping the build when the image already
# carries the hash of its inputs (Dockerfile, .dockerignore, the package, migrations, the
# base image's id and the build arguments).
#
#   dev/packaging/build-worker-image.sh            # → streamworker/worker:local
#   dev/packaging/build-worker-image.sh --force
#   STREAMWORKER_WORKER_IMAGE=registry.example/streamworker:1.0 \
#   STREAMWORKER_BASE_IMAGE=python:3.11-slim-bookworm dev/packaging/build-worker-image.sh
#
# The default base is built offline first (dev/packaging/build-base-image.sh).
# Knobs: STREAMWORKER_BUILD_NETWORK (default `host`: RUN steps reach PyPI through the
# host's network, which also works where Docker has no bridge), STREAMWORKER_BUILD_CA_FILE
# (a PEM bundle the builder stage trusts for PyPI, default: the CAs added to this machine
# under /usr/local/share/ca-certificates — a TLS-intercepting proxy's, for instance).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="${STREAMWORKER_WORKER_IMAGE:-streamworker/worker:local}"
BASE_IMAGE="${STREAMWORKER_BASE_IMAGE:-streamworker-base/python:bookworm}"
NETWORK="${STREAMWORKER_BUILD_NETWORK:-host}"
LABEL=org.streamworker.inputs-hash
LOG="$ROOT/.state/logs/worker-image.log"

say() { printf 'packaging: %s\n' "$*"; }
die() {
  printf 'packaging: error: %s\n' "$*" >&2
  exit 1
}

force=""
[[ ${1:-} == --force ]] && force=1
cd "$ROOT"
mkdir -p "$(dirname "$LOG")"

if [[ $BASE_IMAGE == streamworker-base/* ]]; then
  STREAMWORKER_BASE_IMAGE="$BASE_IMAGE" bash "$ROOT/dev/packaging/build-base-image.sh"
fi
base_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null) ||
  die "base image $BASE_IMAGE is not present (docker pull it, or build-base-image.sh)"

# Every file that goes into the build context, by path and content.
want=$(
  {
    printf '%s\n' "base=$base_id" "base-ref=$BASE_IMAGE"
    find Dockerfile .dockerignore pyproject.toml README.md streamworker migrations -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.so' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)
have=$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)
if [[ -z $force && $have == "$want" ]]; then
  say "$IMAGE: up to date (inputs $want)"
  exit 0
fi

ca_pem=""
if [[ -n ${STREAMWORKER_BUILD_CA_FILE:-} ]]; then
  ca_pem=$(<"$STREAMWORKER_BUILD_CA_FILE")
else
  shopt -s nullglob globstar
  extra=(/usr/local/share/ca-certificates/**/*.crt)
  shopt -u nullglob globstar
  ((${#extra[@]} == 0)) || ca_pem=$(cat "${extra[@]}")
fi

say "$IMAGE: building on $BASE_IMAGE (log: ${LOG#"$ROOT"/})"
started=$SECONDS
old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if ! docker build --network "$NETWORK" --pull=false \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "PIP_EXTRA_CA_PEM=$ca_pem" \
  --build-arg "PIP_INDEX_URL=${PIP_INDEX_URL:-}" \
  --label "$LABEL=$want" \
  -t "$IMAGE" . >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  die "building $IMAGE failed; see $LOG"
fi
new_id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
# The superseded image goes if nothing uses it; its builder layers stay as build cache.
if [[ -n $old_id && $old_id != "$new_id" ]]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
say "$IMAGE: built in $((SECONDS - started)) s ($((size / 1000000)) MB, inputs $want)"
