#!/usr/bin/env bash
# Usage: scripts/psql.sh [psql options...]
#
# Opens psql on the configured database with a fresh IAM auth token, over TLS that verifies the
# server (sslmode=verify-full). Reads the same variables as the function: DB_ENGINE, DB_HOST,
# DB_PORT, DB_NAME, DB_USER, DB_AUTH, AWS_REGION (and DB_HOSTADDR, DB_CA_FILE); without DB_HOST
# it reads `terraform output` from terraform/. With nothing configured while scripts/dev.sh
# runs, it opens its throwaway database (as app_runtime; DB_USER=postgres for the administrator, shaped like Aurora's master user).
#   Aurora PostgreSQL (DB_ENGINE=postgres, the default): an RDS token for DB_USER (app_runtime),
#     verified against the RDS CA bundle.
#   Aurora DSQL (DB_ENGINE=dsql, or DB_AUTH=dsql / dsql-admin): DB_NAME=postgres and DB_USER=admin
#     by default; a DbConnectAdmin token for admin (DB_AUTH=dsql-admin), a DbConnect token for a
#     custom role (DB_AUTH=dsql); verified against Amazon's root CAs (amazon-root-cas.pem).
# The token comes from the AWS CLI (`aws rds generate-db-auth-token`, `aws dsql
# generate-db-connect[-admin]-auth-token`) when it is installed, else from `db-token`
# (PSQL_TOKEN_TOOL=db-token forces that; DB_TOKEN_BIN names a built one). It goes to psql in
# PGPASSWORD and is never printed, not even under `bash -x`.
#   scripts/psql.sh -c 'select current_user'
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
need psql "the PostgreSQL client: Debian 'apt-get install postgresql-client', macOS 'brew install libpq'"

if load_dev_state; then
  # The throwaway database of the running scripts/dev.sh: as the runtime role (row-level
  # security applies to what you see), or DB_USER=postgres for its administrator (shaped like
  # Aurora's master user: no superuser; row-level security applies to it too). The password goes
  # to psql in PGPASSWORD, never traced.
  { set +x; } 2>/dev/null
  user=${DB_USER:-app_runtime}
  if [ "$user" = postgres ]; then PGPASSWORD=$DEV_ADMIN_PASSWORD; else PGPASSWORD=$DEV_RUNTIME_PASSWORD; fi
  export PGPASSWORD
  exec psql "host=$DEV_HOST port=$DEV_PORT dbname=$DEV_DB user=$user sslmode=disable" "$@"
fi
resolve_db_engine
if [ "$DB_ENGINE" = dsql ]; then
  # One database, postgres. An operator logs in as admin, unless DB_AUTH=dsql asks for a custom
  # role (DB_USER, else terraform's db_user, app_runtime: its IAM role must be mapped to it).
  DB_NAME=${DB_NAME:-postgres}
  [ "${DB_AUTH:-}" = dsql ] || DB_USER=${DB_USER:-admin}
fi
load_db_settings
[ -n "$AWS_REGION" ] || die "AWS_REGION is not set: IAM tokens are signed for a region"

# Which token: DB_AUTH, else what the engine and the user call for.
if [ -z "${DB_AUTH:-}" ]; then
  if [ "$DB_ENGINE" = dsql ]; then
    if [ "$DB_USER" = admin ]; then DB_AUTH=dsql-admin; else DB_AUTH=dsql; fi
  else
    DB_AUTH=iam
  fi
fi
case $DB_AUTH in
  iam) ;;
  dsql-admin) [ "$DB_USER" = admin ] || die "DB_AUTH=dsql-admin (a DbConnectAdmin token) logs in as admin only, not as $DB_USER: use DB_AUTH=dsql for a custom role" ;;
  dsql) [ "$DB_USER" != admin ] || die "admin logs in with a DbConnectAdmin token: DB_AUTH=dsql-admin (or leave DB_AUTH unset)" ;;
  *) die "DB_AUTH must be iam, dsql or dsql-admin for psql.sh (it signs tokens), not '$DB_AUTH'" ;;
esac
ca=$(ca_file)
[ -r "$ca" ] || die "CA bundle $ca is not readable"

# The token's command lines, for the AWS CLI and for db-token (no secret in them). DSQL tokens
# name no port or user: DbConnectAdmin is admin's, DbConnect any role mapped to the caller.
aws_hint=""
case $DB_AUTH in
  iam)
    aws_args=(rds generate-db-auth-token --hostname "$DB_HOST" --port "$DB_PORT" --username "$DB_USER" --region "$AWS_REGION")
    tool_args=(--host "$DB_HOST" --port "$DB_PORT" --user "$DB_USER" --region "$AWS_REGION") ;;
  dsql | dsql-admin)
    aws_args=(dsql generate-db-connect-auth-token --hostname "$DB_HOST" --region "$AWS_REGION")
    tool_args=(--dsql --host "$DB_HOST" --region "$AWS_REGION")
    if [ "$DB_AUTH" = dsql-admin ]; then
      aws_args[1]=generate-db-connect-admin-auth-token
      tool_args+=(--admin)
    fi
    aws_hint=" (is the AWS CLI v2 recent enough for 'aws dsql'? PSQL_TOKEN_TOOL=db-token signs with the repo's db-token)" ;;
esac

# No trace from here on: the token must not reach the terminal, even under `bash -x`.
{ xtrace=$(set +o | grep xtrace); set +x; } 2>/dev/null
if [ "${PSQL_TOKEN_TOOL:-}" != db-token ] && command -v aws >/dev/null 2>&1; then
  PGPASSWORD=$(aws "${aws_args[@]}") || die "aws ${aws_args[0]} ${aws_args[1]} failed$aws_hint"
elif [ -n "${DB_TOKEN_BIN:-}" ]; then
  PGPASSWORD=$("$DB_TOKEN_BIN" "${tool_args[@]}")
else
  need cargo "install Rust (https://rustup.rs) for db-token, or the AWS CLI"
  PGPASSWORD=$(cargo run -q --release -p db-token -- "${tool_args[@]}")
fi
export PGPASSWORD
eval "$xtrace"

conninfo="host=$DB_HOST port=$DB_PORT dbname=$DB_NAME user=$DB_USER sslmode=verify-full sslrootcert=$ca"
[ -z "${DB_HOSTADDR:-}" ] || conninfo="$conninfo hostaddr=$DB_HOSTADDR"
exec psql "$conninfo" "$@"
