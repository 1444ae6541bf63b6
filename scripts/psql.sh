#!/usr/bin/env bash
# Usage: scripts/psql.sh [psql options...]
#
# Opens psql on the configured database as the configured user with a fresh IAM auth token, over
# TLS that verifies the server (sslmode=verify-full, the RDS CA bundle as sslrootcert). Reads the
# same variables as the function: DB_HOST, DB_PORT, DB_NAME, DB_USER, AWS_REGION (and DB_HOSTADDR,
# DB_CA_FILE); without DB_HOST it reads `terraform output` from terraform/. The token comes from
# the AWS CLI (`aws rds generate-db-auth-token`) when it is installed, else from `db-token`
# (PSQL_TOKEN_TOOL=db-token forces that). It goes to psql in PGPASSWORD and is never printed.
#   scripts/psql.sh -c 'select current_user'
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
need psql "the PostgreSQL client: Debian 'apt-get install postgresql-client', macOS 'brew install libpq'"
load_db_settings
[ -n "$AWS_REGION" ] || die "AWS_REGION is not set: IAM tokens are signed for a region"
ca=$(ca_file)
[ -r "$ca" ] || die "CA bundle $ca is not readable"

# No trace from here on: the token must not reach the terminal, even under `bash -x`.
{ xtrace=$(set +o | grep xtrace); set +x; } 2>/dev/null
if [ "${PSQL_TOKEN_TOOL:-}" != db-token ] && command -v aws >/dev/null 2>&1; then
  PGPASSWORD=$(aws rds generate-db-auth-token --hostname "$DB_HOST" --port "$DB_PORT" \
    --username "$DB_USER" --region "$AWS_REGION")
elif [ -n "${DB_TOKEN_BIN:-}" ]; then
  PGPASSWORD=$("$DB_TOKEN_BIN" --host "$DB_HOST" --port "$DB_PORT" --user "$DB_USER" --region "$AWS_REGION")
else
  need cargo "install Rust (https://rustup.rs) for db-token, or the AWS CLI"
  PGPASSWORD=$(cargo run -q --release -p db-token -- --host "$DB_HOST" --port "$DB_PORT" \
    --user "$DB_USER" --region "$AWS_REGION")
fi
export PGPASSWORD
eval "$xtrace"

conninfo="host=$DB_HOST port=$DB_PORT dbname=$DB_NAME user=$DB_USER sslmode=verify-full sslrootcert=$ca"
[ -z "${DB_HOSTADDR:-}" ] || conninfo="$conninfo hostaddr=$DB_HOSTADDR"
exec psql "$conninfo" "$@"
