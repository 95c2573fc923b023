#!/usr/bin/env bash
# `make certs`: a throwaway certificate authority and the server certificate PostgreSQL and
# the S3 endpoint present when the stack runs with TLS=1, under .state/tls/ (gitignored):
#
#   ca.crt       the CA every client verifies the servers against (mounted read-only into
#                the job containers at the path .env's S3_CA_BUNDLE and sslrootcert name)
#   ca.key       its key, 0600: signs server.crt, and nothing else ever
#   server.crt   127.0.0.1 and localhost (subjectAltName), signed by ca.crt
#   server.key   its key, 0600; the stack's tls-keys step copies it to each server's own user
#
# Idempotent: kept while server.crt verifies against ca.crt, names 127.0.0.1 and has 30 days
# left; otherwise all four are made again (a new CA: a job still holding the old one fails
# with exit 4 naming the certificate). DIR=... writes elsewhere (the tests' second CA).
# openssl on the host, no root.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${DIR:-.state/tls}"
DAYS=825  # the most a server certificate may last for clients that enforce CA/B limits

valid() {
  [ -s "$dir/ca.crt" ] && [ -s "$dir/server.crt" ] && [ -s "$dir/server.key" ] &&
    openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" >/dev/null 2>&1 &&
    openssl x509 -in "$dir/server.crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 &&
    openssl x509 -in "$dir/server.crt" -noout -ext subjectAltName 2>/dev/null | grep -q 'IP Address:127.0.0.1'
}

command -v openssl >/dev/null || { echo "certs: openssl is missing (Debian: apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
chmod 700 "$dir"
if valid; then
  echo "certs: $dir/ca.crt and the server certificate are current" >&2
  exit 0
fi
umask 077  # keys are the owner's alone from their first byte
work="$(mktemp -d "$dir/.new.XXXXXX")"
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$DAYS" \
  -subj "/CN=adpipe throwaway CA $(date -u +%Y%m%dT%H%M%SZ)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=127.0.0.1" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$work/server.ext"
openssl x509 -req -sha256 -days "$DAYS" -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null
chmod 644 "$work/ca.crt" "$work/server.crt"
for file in ca.key ca.crt server.key server.crt; do mv -f "$work/$file" "$dir/$file"; done
echo "certs: wrote a new CA ($dir/ca.crt) and the server certificate for 127.0.0.1 and localhost" >&2
