#!/usr/bin/env bash
# Usage: scripts/refresh-amazon-roots.sh
# Replaces the vendored Amazon Trust Services root CAs (what Aurora DSQL's certificates chain to)
# with the ones published at www.amazontrust.com. Needs network access to that host. Review the
# diff before committing.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
command -v curl >/dev/null || { echo "curl is required (Debian: apt-get install curl)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is required (Debian: apt-get install openssl)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/crates/pgconn/certs/amazon-root-cas.pem"
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.one"' EXIT
for n in 1 2 3 4; do
  curl --fail --silent --show-error --proto '=https' --tlsv1.2 \
    "https://www.amazontrust.com/repository/AmazonRootCA$n.pem" -o "$tmp.one"
  # Every certificate must parse.
  openssl x509 -in "$tmp.one" -noout
  cat "$tmp.one" >> "$tmp"
done
mv "$tmp" "$dest"
trap - EXIT
echo "wrote $dest (4 certificates); rebuild to compile it in"
