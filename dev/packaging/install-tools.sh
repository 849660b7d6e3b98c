#!/usr/bin/env bash
# Tools the packaging tests need, each installed once and cached under .state/:
#
#   helm        Helm 3, built from the Go module proxy (install-helm.sh) → .state/bin/helm
#   prometheus  Debian's prometheus package (promtool + the server), unpacked with
#               `apt-get download` + `dpkg-deb -x` → .state/bin/{promtool,prometheus};
#               unpacked rather than installed so that no daemon starts on 0.0.0.0:9090
#   compose     Debian's docker-compose (v1.29, a real Compose file parser: `config`)
#   python      kubernetes-validate (Kubernetes JSON schemas, offline) into .venv
#   clients     Debian's kcat and postgresql-client (the README's commands, test_readme.py)
#   asyncapi    @asyncapi/parser (pinned) from npm → .state/tools/asyncapi, read by
#               dev/packaging/asyncapi-validate.mjs; install scripts are not run
#
#   dev/packaging/install-tools.sh [all | helm | prometheus | compose | python | asyncapi | clients]...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.state/bin"
TOOLS="$ROOT/.state/tools"
LOGS="$ROOT/.state/logs"
ASYNCAPI_PARSER_VERSION=3.6.6

say() { printf 'packaging: %s\n' "$*"; }
die() {
  printf 'packaging: error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) for: $*"
  fi
}

# Run an apt command; refresh the package lists once if the first try fails.
apt_retry() {
  "$@" >>"$LOGS/apt.log" 2>&1 && return 0
  as_root apt-get update -q >>"$LOGS/apt.log" 2>&1 || true
  "$@" >>"$LOGS/apt.log" 2>&1 || die "$* failed; see $LOGS/apt.log"
}

install_helm() { bash "$ROOT/dev/packaging/install-helm.sh"; }

install_prometheus() {
  if [[ -x $BIN/promtool && -x $BIN/prometheus ]] && "$BIN/promtool" --version >/dev/null 2>&1; then
    say "prometheus: present ($("$BIN/prometheus" --version 2>&1 | head -n1))"
    return 0
  fi
  local debs="$TOOLS/debs" dest="$TOOLS/prometheus"
  mkdir -p "$debs" "$BIN"
  say "prometheus: unpacking Debian's package into ${dest#"$ROOT"/}"
  rm -f "$debs"/prometheus_*.deb
  (cd "$debs" && apt_retry apt-get download -q prometheus)
  rm -rf "$dest"
  dpkg-deb -x "$debs"/prometheus_*.deb "$dest"
  ln -sf "$dest/usr/bin/promtool" "$BIN/promtool"
  ln -sf "$dest/usr/bin/prometheus" "$BIN/prometheus"
  say "prometheus: $("$BIN/prometheus" --version 2>&1 | head -n1)"
}

install_compose() {
  if command -v docker-compose >/dev/null && docker-compose version >/dev/null 2>&1; then
    say "docker-compose: present ($(docker-compose version --short 2>/dev/null))"
    return 0
  fi
  say "docker-compose: apt-get install docker-compose"
  apt_retry as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends docker-compose
  say "docker-compose: $(docker-compose version --short)"
}

install_python() {
  local py="$ROOT/.venv/bin/python"
  [[ -x $py ]] || die "no .venv yet (make install)"
  if "$py" -c 'import kubernetes_validate' 2>/dev/null; then
    say "kubernetes-validate: present"
    return 0
  fi
  say "kubernetes-validate: pip install"
  "$ROOT/.venv/bin/pip" install -q 'kubernetes-validate>=1.31'
}

# kcat and psql: the README's first-submission commands, run literally by test_readme.py.
install_clients() {
  if command -v kcat >/dev/null && command -v psql >/dev/null; then
    say "clients: present (kcat, psql)"
    return 0
  fi
  say "clients: installing Debian's kcat and postgresql-client"
  apt_retry as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat postgresql-client
}

install_asyncapi() {
  local dest="$TOOLS/asyncapi" manifest
  manifest="$dest/node_modules/@asyncapi/parser/package.json"
  command -v node >/dev/null && command -v npm >/dev/null || die "asyncapi: needs node and npm"
  if [[ -f $manifest ]] &&
    [[ $(node -p 'require(process.argv[1]).version' "$manifest") == "$ASYNCAPI_PARSER_VERSION" ]]; then
    say "@asyncapi/parser: present ($ASYNCAPI_PARSER_VERSION)"
    return 0
  fi
  say "@asyncapi/parser: npm install $ASYNCAPI_PARSER_VERSION into ${dest#"$ROOT"/}"
  mkdir -p "$dest"
  npm install --prefix "$dest" --save-exact --ignore-scripts --no-audit --no-fund \
    "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" >>"$LOGS/npm.log" 2>&1 ||
    die "npm install @asyncapi/parser failed; see $LOGS/npm.log"
  say "@asyncapi/parser: $ASYNCAPI_PARSER_VERSION"
}

mkdir -p "$BIN" "$TOOLS" "$LOGS"
targets=("$@")
((${#targets[@]})) || targets=(all)
for target in "${targets[@]}"; do
  case $target in
  all) install_helm && install_prometheus && install_compose && install_python && install_asyncapi && install_clients ;;
  helm) install_helm ;;
  prometheus) install_prometheus ;;
  compose) install_compose ;;
  python) install_python ;;
  asyncapi) install_asyncapi ;;
  clients) install_clients ;;
  *) die "unknown tool $target (all, helm, prometheus, compose, python, asyncapi)" ;;
  esac
done
