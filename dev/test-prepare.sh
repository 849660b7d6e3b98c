#!/usr/bin/env bash
# What `make test` needs besides the stack, with the runtime images built meanwhile.
#
# On a fresh machine the 46 runtime images are the longest step and wait mostly on the
# mirror and the disk, while the other steps (the TLS broker, helm from source, the worker
# and DinD images) compile and download: running them side by side saves minutes there,
# and nothing when everything is cached. Exits non-zero when either side failed.
set -euo pipefail
cd "$(dirname "$0")/.."
SW=.venv/bin/streamworker
LOG=.state/logs/images-build.log
mkdir -p .state/logs
t0=$SECONDS

# shellcheck disable=SC2086  # TEST_LANGUAGES is a space-separated list of ids
"$SW" images build ${TEST_LANGUAGES:-} >"$LOG" 2>&1 &
images=$!
# A failed step below stops the build too instead of leaving it running.
trap 'kill "$images" 2>/dev/null || true' EXIT

bash dev/stack.sh up-kafka-secure
bash dev/stack.sh up-postgres-tls
bash dev/packaging/install-tools.sh
bash dev/packaging/build-worker-image.sh
.venv/bin/python dev/dind/build.py
echo "test-prepare: services, tools, worker and DinD images ready after $((SECONDS - t0)) s"

rc=0
wait "$images" || rc=$?
trap - EXIT
grep -E '^\[[a-z0-9+-]+\] (built|refreshed|failed)|^images:' "$LOG" || true
if [[ $rc -ne 0 ]]; then
  echo "test-prepare: the runtime images failed (exit $rc); the end of $LOG:" >&2
  tail -n 40 "$LOG" >&2
  exit "$rc"
fi
echo "test-prepare: runtime images ready after $((SECONDS - t0)) s (log: $LOG)"
