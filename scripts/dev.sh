#!/usr/bin/env bash
# Usage: scripts/dev.sh
#
# Runs the API locally on http://127.0.0.1:3000 (BIND_ADDR to change it) with the same router
# and handlers as on Lambda. Without DATABASE_URL it starts a throwaway PostgreSQL (data in a
# temporary directory, a free port, as an unprivileged user when run as root), applies the
# migrations, and stops and deletes it on exit. With DATABASE_URL (in the environment or .env)
# it uses that database; set MIGRATE_DATABASE_URL too to apply migrations there first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh

case "${1:-}" in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
need cargo "install Rust from https://rustup.rs"

# A fixed secret for local tokens only; never use it anywhere else.
from_dotenv() { [ -f .env ] && sed -n "s/^$1=//p" .env | tail -n 1 | sed -e 's/^"//' -e 's/"$//' || true; }
if [ -z "${DEV_JWT_SECRET:-}" ] && [ -z "$(from_dotenv DEV_JWT_SECRET)" ]; then
  export DEV_JWT_SECRET="local-development-secret-not-for-production"
fi

# DEVSERVER_BIN: a devserver binary to use instead of building one (the tests pass theirs).
devserver=${DEVSERVER_BIN:-}
if [ -z "$devserver" ]; then
  cargo build -q -p devserver
  devserver="${CARGO_TARGET_DIR:-$root/target}/debug/devserver"
fi

if [ -n "${DATABASE_URL:-}" ] || [ -n "$(from_dotenv DATABASE_URL)" ]; then
  if [ -n "${MIGRATE_DATABASE_URL:-}" ]; then "$devserver" migrate; fi
  exec "$devserver" serve
fi

initdb=$(pg_bin initdb); pg_ctl=$(pg_bin pg_ctl)
[ -n "$initdb" ] && [ -n "$pg_ctl" ] || die "PostgreSQL server programs (initdb, pg_ctl) not found: $PG_INSTALL_HINT"

dir=$(mktemp -d "${TMPDIR:-/tmp}/tenant-api-dev.XXXXXX")
port=$(free_port 54320 54420)
admin_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
runtime_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
stop() {
  as_db_user "$pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
printf '%s' "$admin_pw" > "$dir/pw"
[ "$(id -u)" -ne 0 ] || chown -R "$DB_OS_USER" "$dir"
as_db_user "$initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C --auth-local=trust \
  --auth-host=scram-sha-256 --pwfile="$dir/pw" >/dev/null
rm -f "$dir/pw"
as_db_user "$pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
echo "PostgreSQL $("$(dirname "$initdb")/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir, removed on exit)"

# Create the database, the roles and the schema as the superuser; the API then logs in as
# the runtime role, which row-level security applies to.
MIGRATE_DATABASE_URL="postgres://postgres:$admin_pw@127.0.0.1:$port/postgres" "$devserver" migrate --create-database app
MIGRATE_DATABASE_URL="postgres://postgres:$admin_pw@127.0.0.1:$port/app" \
  MIGRATE_RUNTIME_PASSWORD="$runtime_pw" "$devserver" migrate --bootstrap-roles

export DATABASE_URL="postgres://app_runtime:$runtime_pw@127.0.0.1:$port/app"
"$devserver" serve
