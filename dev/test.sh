#!/usr/bin/env bash
# `make test`: lint, the stack, the preparation and both pytest phases, with the runtime
# images built meanwhile.
#
# On a fresh machine the 46 runtime images are the longest step (~14 min) and wait mostly
# on the mirror and the disk. Everything that needs no runtime image runs beside them:
# helm compiled from source (in the background too), lint and types, the stack, the TLS
# broker, the other test tools, the worker and DinD images, then the unit tests and the
# integration tests marked `no_runtime_images`. The rest of the suite starts once every
# image is there. When everything is cached the images are found up to date in a second
# and the order costs nothing.
#
# Every step runs even after a test phase failed (one run shows every failure); the exit
# status is non-zero when any step or any test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
SW=.venv/bin/streamworker
PYTEST=(.venv/bin/pytest -q -ra --durations=15)
LOG=.state/logs/images-build.log
HELM_LOG=.state/logs/install-helm.log
mkdir -p .state/logs
t0=$SECONDS
say() { echo "make test: $* ($((SECONDS - t0)) s)"; }
die() { echo "make test: $*" >&2; exit 1; }

bash dev/stack.sh up-docker || die "Docker did not start"
# shellcheck disable=SC2086  # TEST_LANGUAGES is a space-separated list of ids
"$SW" images build ${TEST_LANGUAGES:-} >"$LOG" 2>&1 &
images=$!
say "building the runtime images in the background (log: $LOG)"

# Helm too: it compiles from source for ~8 min on a fresh machine, while the steps below
# mostly download and unpack. (Only helm: the other tools use apt, which the stack's
# steps may be using at the same time.)
bash dev/packaging/install-tools.sh helm >"$HELM_LOG" 2>&1 &
helm=$!
# A failed step below stops both instead of leaving them running.
trap 'kill "$images" "$helm" 2>/dev/null || true' EXIT

make --no-print-directory lint || die "lint failed"
bash dev/stack.sh up || die "the stack did not start"
bash dev/stack.sh up-kafka-secure || die "the TLS broker did not start"
bash dev/stack.sh up-postgres-tls || die "PostgreSQL over TLS did not start"
bash dev/packaging/install-tools.sh prometheus compose python asyncapi clients ||
  die "installing the test tools failed"
bash dev/packaging/build-worker-image.sh || die "the worker image failed"
.venv/bin/python dev/dind/build.py || die "the DinD image failed"
rc=0
wait "$helm" || rc=$?
cat "$HELM_LOG"
[[ $rc -eq 0 ]] || die "building helm failed (exit $rc)"
say "stack, tools, worker and DinD images ready"

export STREAMWORKER_REQUIRE_STACK=1
status=0
empty=0
# Exit 5 is "no test selected": PYTEST_ARGS may name tests of one phase only (but not of
# neither).
phase() {
  local rc=0
  # shellcheck disable=SC2086  # PYTEST_ARGS is split like make would
  "${PYTEST[@]}" "$@" ${PYTEST_ARGS:-} || rc=$?
  if [[ $rc -eq 5 ]]; then
    empty=$((empty + 1))
  elif [[ $rc -ne 0 ]]; then
    status=1
  fi
}
say "phase 1: tests that need no runtime image"
phase -m no_runtime_images

rc=0
wait "$images" || rc=$?
trap - EXIT
grep -E '^\[[a-z0-9+-]+\] (built|refreshed|failed)|^images:' "$LOG" || true
if [[ $rc -ne 0 ]]; then
  echo "make test: the runtime images failed (exit $rc); the end of $LOG:" >&2
  tail -n 40 "$LOG" >&2
  exit "$rc"
fi
say "runtime images ready"

say "phase 2: tests that run submissions in the runtime images"
phase -m "not no_runtime_images"
if [[ $empty -eq 2 ]]; then
  say "FAILED: no test selected in either phase (PYTEST_ARGS=${PYTEST_ARGS:-})"
  exit 1
fi
if [[ $status -ne 0 ]]; then
  say "FAILED (see the summaries of both phases above)"
  exit 1
fi
say "passed"
