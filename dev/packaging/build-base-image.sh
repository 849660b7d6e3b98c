#!/usr/bin/env bash
# Build the worker's base image offline: Debian bookworm with Python 3, venv, tini and
# CA certificates, bootstrapped by mmdebstrap and streamed into `docker import` — no
# registry involved, like the runtime images (streamworker/images/).
#
#   dev/packaging/build-base-image.sh            # skips when the tag carries the recipe hash
#   dev/packaging/build-base-image.sh --force
#
# With a registry at hand, skip this and build the worker on Docker's official image:
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm .
# shellcheck disable=SC2016  # "$1" in the hooks is mmdebstrap's root directory, not ours
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/.state"
BASE_IMAGE="${STREAMWORKER_BASE_IMAGE:-streamworker-base/python:bookworm}"
SUITE="${STREAMWORKER_DEBIAN_SUITE:-bookworm}"
# apt stays in the image (variant apt) so that a derived image can install more packages.
PACKAGES=(python3 python3-venv tini ca-certificates passwd)
# Bump when the mmdebstrap hooks or the import's --change lines change (a rebuild).
RECIPE_VERSION=1
LABEL=org.streamworker.
APT_CACHE="$STATE/apt-cache"
LOG="$STATE/logs/base-image.log"

say() { printf 'packaging: %s\n' "$*"; }
die() {
  printf 'packaging: error: %s\n' "$*" >&2
  exit 1
}

force=""
[[ ${1:-} == --force ]] && force=1

command -v docker >/dev/null || die "docker is not installed (bash dev/stack.sh up-docker)"
docker info >/dev/null 2>&1 || die "Docker does not answer (bash dev/stack.sh up-docker)"

# The mirror the machine's apt uses, as the runtime images do (STREAMWORKER_DEBIAN_MIRROR wins).
py="$ROOT/.venv/bin/python"
[[ -x $py ]] || py=python3
mapfile -t SOURCES < <(
  cd "$ROOT" && "$py" -c '
import sys
from streamworker.images.mirror import debian_source_lines
from streamworker.settings import load_settings
s = load_settings()
print("\n".join(debian_source_lines(s.debian_suite, override=s.debian_mirror)))'
)
[[ ${#SOURCES[@]} -gt 0 ]] || die "no Debian sources found"

want=$(
  {
    printf '%s\n' "$RECIPE_VERSION" "$SUITE" "${PACKAGES[@]}" "${SOURCES[@]}"
  } | sha256sum | cut -c1-16
)
have=$(docker image inspect --format "{{index .Config.Labels \"${LABEL}recipe-hash\"}}" \
  "$BASE_IMAGE" 2>/dev/null || true)
if [[ -z $force && $have == "$want" ]]; then
  say "$BASE_IMAGE: up to date (recipe $want)"
  exit 0
fi

command -v mmdebstrap >/dev/null || {
  say "apt: installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null ||
      die "apt-get install mmdebstrap failed"
  }
}

mkdir -p "$APT_CACHE" "$(dirname "$LOG")"
incoming="$STATE/apt-incoming-base"
rm -rf "$incoming"
mkdir -p "$incoming" "$STATE/tmp"
archives='"$1/var/cache/apt/archives"'
link_in="mkdir -p $archives; for f in '$APT_CACHE'/*.deb; do [ -e \"\$f\" ] || continue; ln -f \"\$f\" $archives/ 2>/dev/null || cp \"\$f\" $archives/; done; true"
link_out="for f in $archives/*.deb; do [ -e \"\$f\" ] || continue; ln -f \"\$f\" '$incoming'/ 2>/dev/null || cp \"\$f\" '$incoming'/; done; true"
trim='find "$1/usr/share/doc" -type f ! -name copyright -delete; rm -rf "$1/usr/share/man" "$1/usr/share/info" "$1/usr/share/locale" "$1/usr/share/lintian" "$1/var/lib/apt/lists/"* "$1/var/log/"*.log "$1/var/cache/debconf/"*-old "$1/var/lib/dpkg/"*-old'
# A non-root build user would need subuid ranges; as root mmdebstrap uses its root mode.
started=$SECONDS
old_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
say "$BASE_IMAGE: bootstrapping $SUITE with ${PACKAGES[*]} (log: ${LOG#"$ROOT"/})"
# `docker import` reads the tar from stdin; --change sets the config the Dockerfile extends.
set +e
TMPDIR="$STATE/tmp" mmdebstrap --variant=apt --format=tar --skip=essential/unlink \
  --include="$(
    IFS=,
    echo "${PACKAGES[*]}"
  )" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --essential-hook='mkdir -p "$1/usr/share/man/man1"' \
  --setup-hook="$link_in" \
  --customize-hook="$link_out" \
  --customize-hook="$trim" \
  "$SUITE" - "${SOURCES[@]}" 2>"$LOG" |
  docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --change "LABEL ${LABEL}recipe-hash=$want ${LABEL}suite=$SUITE ${LABEL}packages=$(
      IFS=,
      echo "${PACKAGES[*]}"
    )" \
    - "$BASE_IMAGE" >>"$LOG"
status=("${PIPESTATUS[@]}")
set -e
for deb in "$incoming"/*.deb; do
  [[ -e $deb ]] || continue
  if [[ $deb -ef $APT_CACHE/${deb##*/} ]]; then rm -f "$deb"; else mv -f "$deb" "$APT_CACHE/"; fi
done
rm -rf "$incoming"
if [[ ${status[0]} -ne 0 || ${status[1]} -ne 0 ]]; then
  tail -n 30 "$LOG" >&2
  die "building $BASE_IMAGE failed (mmdebstrap ${status[0]}, docker import ${status[1]}); see $LOG"
fi
# A superseded base goes unless an image (an older worker) is still built on it.
new_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")
if [[ -n $old_id && $old_id != "$new_id" ]]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$BASE_IMAGE")
say "$BASE_IMAGE: built in $((SECONDS - started)) s ($((size / 1000000)) MB, recipe $want)"
