#!/usr/bin/env bash
# Usage: scripts/migrate.sh [--bootstrap-roles [--rds-iam]]
#
# Applies the migrations to the configured database; a second run changes nothing. By default it
# logs in like the function does but as the owner role, with DB_HOST, DB_PORT, DB_NAME,
# AWS_REGION from the environment or `terraform output`:
#   Aurora PostgreSQL (DB_ENGINE=postgres, the default): migrations/, IAM auth (DB_AUTH=iam) as
#     DB_USER=app_owner, TLS verified against the RDS CA bundle (or DB_CA_FILE).
#   Aurora DSQL (DB_ENGINE=dsql, from the environment, DB_AUTH=dsql*, or `terraform output
#     db_engine`): migrations/dsql/, as admin with a DbConnectAdmin token (DB_AUTH=dsql-admin) to
#     the database postgres, TLS verified against Amazon's root CAs; then it maps app_runtime to
#     DSQL_RUNTIME_ROLE_ARN (default: `terraform output lambda_iam_role_arn`, the API function's
#     role) with AWS IAM GRANT. No --bootstrap-roles: the DSQL migrations create app_runtime.
# With nothing configured while scripts/dev.sh runs: its throwaway database (DEV_STATE).
# MIGRATE_DATABASE_URL=postgres://user:password@host/db?sslmode=verify-full logs in with a
# password instead, e.g. as the master user for the one-time --bootstrap-roles, which creates
# app_owner and app_runtime (and with --rds-iam grants them rds_iam, for IAM logins on Aurora).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
for arg in "$@"; do
  case $arg in --bootstrap-roles|--rds-iam) ;; *) die "unknown option $arg (see --help)";; esac
done

if load_dev_state; then
  # The throwaway database of the running scripts/dev.sh, as its administrator (postgres, shaped
  # like Aurora's master user: no superuser), with its engine.
  { set +x; } 2>/dev/null
  export MIGRATE_DATABASE_URL="postgres://postgres:$DEV_ADMIN_PASSWORD@$DEV_HOST:$DEV_PORT/$DEV_DB" DB_ENGINE=$DEV_ENGINE
fi
if [ -z "${MIGRATE_DATABASE_URL:-}" ]; then
  host_given=${DB_HOST:+yes}
  resolve_db_engine
  if [ "$DB_ENGINE" = dsql ]; then
    [ $# -eq 0 ] || die "$1 is for Aurora PostgreSQL: on DSQL the migrations (migrations/dsql/) create app_runtime themselves"
    DB_USER=${DB_USER:-admin}; DB_NAME=${DB_NAME:-postgres}; DB_AUTH=${DB_AUTH:-dsql-admin}
    [ "$DB_USER" = admin ] && [ "$DB_AUTH" = dsql-admin ] ||
      die "DSQL migrations run as admin with a DbConnectAdmin token (DB_USER=admin DB_AUTH=dsql-admin), not $DB_USER with DB_AUTH=$DB_AUTH"
    # The IAM role that will log in as app_runtime: the API function's, from terraform.
    if [ -z "${DSQL_RUNTIME_ROLE_ARN:-}" ] && [ -z "$host_given" ]; then
      DSQL_RUNTIME_ROLE_ARN=$(tf_output lambda_iam_role_arn)
    fi
    if [ -n "${DSQL_RUNTIME_ROLE_ARN:-}" ]; then
      # It is written into the AWS IAM GRANT statement: an IAM role's ARN and nothing else.
      [[ $DSQL_RUNTIME_ROLE_ARN =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$ ]] ||
        die "DSQL_RUNTIME_ROLE_ARN must be an IAM role ARN, arn:aws:iam::<account>:role/<name>, not '$DSQL_RUNTIME_ROLE_ARN'"
      export DSQL_RUNTIME_ROLE_ARN
    else
      echo "note: DSQL_RUNTIME_ROLE_ARN is not set: app_runtime is not mapped to any IAM role, so nothing can log in as it yet" >&2
    fi
  else
    DB_USER=${DB_USER:-app_owner}; DB_AUTH=${DB_AUTH:-iam}
  fi
  load_db_settings
  export DB_AUTH DB_TLS=${DB_TLS:-verify-full} DB_CA_FILE=$(ca_file)
  [ "$DB_AUTH" = password ] || [ -n "$AWS_REGION" ] || die "AWS_REGION is not set: IAM tokens are signed for a region"
fi

if [ -n "${DEVSERVER_BIN:-}" ]; then
  exec "$DEVSERVER_BIN" migrate "$@"
fi
need cargo "install Rust from https://rustup.rs"
exec cargo run -q --release -p devserver -- migrate "$@"
