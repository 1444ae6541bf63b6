#!/usr/bin/env bash
# Usage: scripts/refresh-rds-ca.sh
# Replaces the vendored RDS CA bundle with AWS's published global bundle. Needs network access
# to truststore.pki.rds.amazonaws.com. Review the diff before committing.
set -euo pipefail
command -v curl >/dev/null || { echo "curl is required (Debian: apt-get install curl)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is required (Debian: apt-get install openssl)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/crates/pgconn/certs/rds-ca-bundle.pem"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl --fail --silent --show-error --proto '=https' --tlsv1.2 \
  https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem -o "$tmp"
count=$(grep -c 'BEGIN CERTIFICATE' "$tmp")
[ "$count" -gt 0 ] || { echo "downloaded bundle has no certificates" >&2; exit 1; }
# Every certificate must parse.
openssl crl2pkcs7 -nocrl -certfile "$tmp" | openssl pkcs7 -print_certs -noout >/dev/null
mv "$tmp" "$dest"
trap - EXIT
echo "wrote $dest ($count certificates); rebuild to compile it in"
