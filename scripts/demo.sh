#!/usr/bin/env bash
# Usage: scripts/demo.sh [API_BASE_URL]
#
# The README's curl session: tenants, invitations, todos and users against a running dev server
# (scripts/dev.sh; default http://127.0.0.1:3000). Tokens come from `devserver token`, signed
# with DEV_JWT_SECRET (the dev server's default when unset). Prints each request and its answer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
need curl "Debian: apt-get install curl"
API=${1:-http://127.0.0.1:3000}
export DEV_JWT_SECRET=${DEV_JWT_SECRET:-local-development-secret-not-for-production}
devserver=${DEVSERVER_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/devserver}
[ -x "$devserver" ] || cargo build -q -p devserver

alice=$("$devserver" token --sub alice --email alice@example.com --name Alice)
bob=$("$devserver" token --sub bob --email bob@example.com --name Bob)

# call WHO METHOD PATH [JSON]: shows the request, then the status and body of the answer.
call() {
  local who=$1 method=$2 path=$3 body=${4:-} token
  case $who in alice) token=$alice;; bob) token=$bob;; *) token="";; esac
  echo "\$ $method $path${body:+ $body}   # as $who"
  local args=(-s -X "$method" -w '\n%{http_code}' "$API$path")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  local out; out=$(curl "${args[@]}")
  LAST=${out%$'\n'*}
  echo "${out##*$'\n'} $LAST"
  echo
}

T=108124a5-2e34-418a-9735-b93082e9fbf2
call alice POST /api/tenants '{"name":"my first customer","id":"'$T'"}'
call alice POST /api/tenants '{"name":"my first customer","id":"'$T'"}'
call bob GET /api/me
BOB=$(curl -s -H "Authorization: Bearer $bob" "$API/api/me" | sed -n 's/.*"user":{"id":"\([^"]*\)".*/\1/p')
call bob GET /api/tenants/$T
call alice PUT /api/tenants/$T/members/$BOB '{"role":"member"}'
call alice POST /api/tenants/$T/invitations '{"role":"member"}'
CODE=$(sed -n 's/.*"code":"\([^"]*\)".*/\1/p' <<<"$LAST")
call bob POST /api/invitations/accept '{"code":"'$CODE'"}'
call bob POST /api/invitations/accept '{"code":"'$CODE'"}'
call bob POST /api/tenants/$T/todos '{"title":"Ship the first release","id":"0b6f1a52-3f7e-4c8e-9d7a-1c2b3d4e5f60"}'
call alice POST /api/tenants/$T/todos '{"title":"Write the changelog","id":"0b6f1a52-3f7e-4c8e-9d7a-1c2b3d4e5f61"}'
call alice PATCH /api/tenants/$T/todos/0b6f1a52-3f7e-4c8e-9d7a-1c2b3d4e5f60 '{"complete":true}'
call bob GET "/api/tenants/$T/todos?limit=1"
call bob GET "/api/tenants/$T/todos?complete=false"
call alice PUT /api/tenants/$T/members/$BOB '{"role":"viewer"}'
call bob DELETE /api/tenants/$T/todos/0b6f1a52-3f7e-4c8e-9d7a-1c2b3d4e5f61
call alice GET /api/tenants/$T/members
call bob GET /api/users
call bob POST /api/users '{"name":"Robert","email":"robert@example.com"}'
call alice GET /api/todos
call nobody GET /api/me
