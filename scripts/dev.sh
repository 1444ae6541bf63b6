#!/usr/bin/env bash
# Usage: scripts/dev.sh [--dsql]
#
# Runs the API locally on http://127.0.0.1:3000 (BIND_ADDR to change it) with the same router
# and handlers as on Lambda. Without DATABASE_URL it starts a throwaway PostgreSQL (data in a
# temporary directory, a free port, as an unprivileged user when run as root), applies the
# migrations, and stops and deletes it on exit. With DATABASE_URL (in the environment or .env)
# it uses that database; set MIGRATE_DATABASE_URL too to apply migrations there first.
# --dsql: the Aurora DSQL path instead: the DSQL schema (migrations/dsql) and statements, logged
# in with DSQL tokens through the IAM stand-in in DSQL mode (crates/iam-standin: it refuses what
# DSQL refuses, and enforces its limits) in front of the
# throwaway PostgreSQL, over verified TLS. Nothing leaves the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh

dsql=
case "${1:-}" in
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  --dsql) dsql=1;;
  "") ;;
  *) die "unknown option $1 (see --help)";;
esac
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

if [ -z "$dsql" ] && { [ -n "${DATABASE_URL:-}" ] || [ -n "$(from_dotenv DATABASE_URL)" ]; }; then
  if [ -n "${MIGRATE_DATABASE_URL:-}" ]; then "$devserver" migrate; fi
  exec "$devserver" serve
fi

initdb=$(pg_bin initdb); pg_ctl=$(pg_bin pg_ctl)
[ -n "$initdb" ] && [ -n "$pg_ctl" ] || die "PostgreSQL server programs (initdb, pg_ctl) not found: $PG_INSTALL_HINT"

dir=$(mktemp -d "${TMPDIR:-/tmp}/tenant-api-dev.XXXXXX")
port=$(free_port 54320 54420)
# The cluster's superuser (rdsadmin, as on Aurora) logs in only over the Unix socket; the
# administrator everything else runs as is `postgres`, shaped like Aurora's master user (no
# superuser: scripts/local-aurora-roles.sql), with this password.
superuser_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
admin_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
runtime_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
stop() {
  rm -f "$DEV_STATE"
  as_db_user "$pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
printf '%s' "$superuser_pw" > "$dir/pw"
[ "$(id -u)" -ne 0 ] || chown -R "$DB_OS_USER" "$dir"
as_db_user "$initdb" -D "$dir/data" -U rdsadmin -E UTF8 --locale=C --auth-local=trust \
  --auth-host=scram-sha-256 --pwfile="$dir/pw" >/dev/null
rm -f "$dir/pw"
as_db_user "$pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
echo "PostgreSQL $("$(dirname "$initdb")/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir, removed on exit)"
psql=$(pg_bin psql)
[ -n "$psql" ] || die "psql not found: $PG_INSTALL_HINT"
# The password goes in on standard input, not on a command line.
{ cat scripts/local-aurora-roles.sql; printf "ALTER ROLE postgres PASSWORD '%s';\n" "$admin_pw"; } |
  as_db_user "$psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U rdsadmin -d postgres >/dev/null

# Create the database, the roles and the schema as the Aurora-shaped administrator (not a
# superuser, as on Aurora); the API then logs in as the runtime role, which row-level security
# applies to.
MIGRATE_DATABASE_URL="postgres://postgres:$admin_pw@127.0.0.1:$port/postgres" "$devserver" migrate --create-database app
if [ -n "$dsql" ]; then export DB_ENGINE=dsql; fi
MIGRATE_DATABASE_URL="postgres://postgres:$admin_pw@127.0.0.1:$port/app" \
  MIGRATE_RUNTIME_PASSWORD="$runtime_pw" "$devserver" migrate --bootstrap-roles
if [ -n "$dsql" ]; then
  # DSQL's `sys` objects (AWS's, so the cluster's superuser installs their emulation), and the
  # key-size check of each index built by the migration above (crates/iam-standin/sql/).
  { cat crates/iam-standin/sql/dsql-sys.sql; echo "SELECT sys.__check_index_keys(1024);"; } |
    as_db_user "$psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U rdsadmin -d app >/dev/null
fi

# How to reach this database while dev.sh runs, for scripts/psql.sh and scripts/migrate.sh.
DEV_PID=$$ DEV_HOST=127.0.0.1 DEV_PORT=$port DEV_DB=app DEV_ENGINE=${DB_ENGINE:-postgres} \
  DEV_ADMIN_PASSWORD=$admin_pw DEV_RUNTIME_PASSWORD=$runtime_pw \
  write_dev_state "$DEV_STATE" DEV_PID DEV_HOST DEV_PORT DEV_DB DEV_ENGINE DEV_ADMIN_PASSWORD DEV_RUNTIME_PASSWORD

if [ -z "$dsql" ]; then
  export DATABASE_URL="postgres://app_runtime:$runtime_pw@127.0.0.1:$port/app"
  "$devserver" serve
  exit
fi

# DSQL: the stand-in verifies DSQL tokens (signed with its test credentials, which work nowhere
# else) and relays to the PostgreSQL socket; the API trusts the stand-in's CA only.
standin=${IAM_STANDIN_BIN:-}
if [ -z "$standin" ]; then
  cargo build -q -p iam-standin --bin iam-standin
  standin="${CARGO_TARGET_DIR:-$root/target}/debug/iam-standin"
fi
standin_port=$(free_port 54430 54530)
host=dsql.standin.internal
"$standin" --dsql --listen "127.0.0.1:$standin_port" --hostname "$host" --region eu-west-1 \
  --upstream "$dir/.s.PGSQL.$port" --ca-out "$dir/standin-ca.pem" >"$dir/standin.log" 2>&1 &
standin_pid=$!
trap 'kill "$standin_pid" 2>/dev/null || true; stop' EXIT
for _ in $(seq 100); do grep -q AWS_SECRET_ACCESS_KEY "$dir/standin.log" && break; sleep 0.1; done
grep -q AWS_SECRET_ACCESS_KEY "$dir/standin.log" || die "the IAM stand-in did not start: $(cat "$dir/standin.log")"
echo "Aurora DSQL path: DSQL tokens through the IAM stand-in on 127.0.0.1:$standin_port (as $host)"
unset DATABASE_URL
export DB_HOST=$host DB_HOSTADDR=127.0.0.1 DB_PORT=$standin_port DB_NAME=app DB_USER=app_runtime \
  DB_AUTH=dsql AWS_REGION=eu-west-1 DB_CA_FILE="$dir/standin-ca.pem" \
  AWS_ACCESS_KEY_ID=$(sed -n 's/.*AWS_ACCESS_KEY_ID=\([^ ]*\).*/\1/p' "$dir/standin.log") \
  AWS_SECRET_ACCESS_KEY=$(sed -n 's/.*AWS_SECRET_ACCESS_KEY=\([^ ]*\).*/\1/p' "$dir/standin.log")
"$devserver" serve
