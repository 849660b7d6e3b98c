#!/usr/bin/env bash
# Certificates for mutual TLS between streamworker and a remote Docker daemon.
#
#   dev/tls.sh DIR [SAN...]      e.g. dev/tls.sh /etc/docker/tls IP:10.0.0.5 DNS:docker.internal
#
# Writes, with a fresh CA each time:
#   DIR/ca.pem DIR/ca-key.pem              the CA (keep ca-key.pem offline in production)
#   DIR/server-cert.pem DIR/server-key.pem for dockerd --tlsverify --tlscacert --tlscert --tlskey
#   DIR/client/{ca,cert,key}.pem           a Docker-style client dir: DOCKER_CERT_PATH=DIR/client
# The server certificate always names IP:127.0.0.1 and DNS:localhost, plus any SAN given.
# Keys are ECDSA P-256 (fast to make, accepted by Go's TLS and Python's ssl). Needs openssl.
# TLS_NAME (default docker) names the service in the subjects: dev/stack.sh makes the
# secure Kafka broker's and PostgreSQL's certificates with this script too.
set -euo pipefail

DAYS=${TLS_DAYS:-30}
NAME=${TLS_NAME:-docker}
[[ $# -ge 1 ]] || {
  echo "usage: $0 DIR [SAN...]" >&2
  exit 2
}
dir=$1
shift
sans="IP:127.0.0.1,DNS:localhost"
for san in "$@"; do sans+=",$san"; done

command -v openssl >/dev/null || {
  echo "tls.sh: openssl is missing (apt-get install openssl)" >&2
  exit 1
}
mkdir -p "$dir/client"
umask 077
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SUBJECT EXTENSIONS: NAME-key.pem (made here) and NAME-cert.pem, signed by the CA.
sign() {
  local name=$1 subject=$2 ext=$3
  key "$name-key.pem"
  openssl req -new -key "$name-key.pem" -subj "$subject" -out "$name.csr" 2>/dev/null
  printf '%b\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days "$DAYS" -sha256 -extfile "$name.ext" -out "$name-cert.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

key ca-key.pem
openssl req -x509 -new -key ca-key.pem -sha256 -days "$DAYS" \
  -subj "/CN=streamworker $NAME CA $(date -u +%FT%TZ)" -out ca.pem 2>/dev/null
sign server "/CN=$NAME daemon" \
  "subjectAltName=$sans\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature"
sign client "/CN=streamworker" "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature"
mv client-cert.pem client/cert.pem
mv client-key.pem client/key.pem
cp ca.pem client/ca.pem
rm -f ca.srl
chmod 0644 ca.pem server-cert.pem client/ca.pem client/cert.pem
echo "tls.sh: wrote $dir (server SANs: $sans; client dir: $dir/client)"
