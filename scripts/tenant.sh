#!/usr/bin/env bash
# Usage: scripts/tenant.sh list
#        scripts/tenant.sh move <tenant-id> --to dedicated [--database-url URL] [--dry-run]
#        scripts/tenant.sh move <tenant-id> --to pooled [--database-url URL] [--dry-run]
#        scripts/tenant.sh plan <tenant-id> <plan>
#
# plan (both engines) sets a tenant's plan: a name from PLANS (set it as the deployment's
# function has it) or a built-in plan (free, standard, premium); its rate limit and quotas
# apply from the next request. A dedicated tenant's copy of its row changes with it.
# Silo tenants (Aurora PostgreSQL): lists every tenant with where its todos live, or moves one
# between the shared database (pooled) and a dedicated database. During a move the tenant's
# writes get 503 with Retry-After for a few moments; reads go on; nothing written is lost. A move
# that fails midway leaves the tenant where it was; run it again.
#   --to dedicated without --database-url creates a database tenant_<id> in the same cluster
#   (the login needs CREATEDB: on AWS the master user via MIGRATE_DATABASE_URL, not app_owner), with
#   the roles' grants and the migrations, and registers it.
#   --database-url postgres://app_owner@host:5432/db?sslmode=verify-full names an existing one
#   (another cluster: run scripts/migrate.sh --bootstrap-roles against it first); the password
#   part may be left out with IAM auth. TENANT_DATABASE_URL works too and stays out of `ps`.
# It logs in like scripts/migrate.sh: while scripts/dev.sh runs, to its database; otherwise as
# the owner role with IAM auth (DB_HOST, DB_PORT, DB_NAME, AWS_REGION from the environment or
# `terraform output`), or with MIGRATE_DATABASE_URL.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
case "${1:-}" in
  -h|--help|"") sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  list|move|plan) ;;
  *) die "unknown command $1 (see --help)";;
esac
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = --database-url ] && [ $((i + 1)) -lt ${#args[@]} ]; then
    # Out of the command line (and of `ps`): through the environment.
    { set +x; } 2>/dev/null
    export TENANT_DATABASE_URL=${args[$((i + 1))]}
    unset 'args[i]' 'args[i+1]'
  fi
done

if load_dev_state; then
  { set +x; } 2>/dev/null
  export MIGRATE_DATABASE_URL="postgres://postgres:$DEV_ADMIN_PASSWORD@$DEV_HOST:$DEV_PORT/$DEV_DB" DB_ENGINE=$DEV_ENGINE
fi
if [ -z "${MIGRATE_DATABASE_URL:-}" ]; then
  resolve_db_engine
  if [ "$DB_ENGINE" = dsql ] && [ "$1" = plan ]; then
    # The plan is a column of the tenant's row: admin, as scripts/migrate.sh logs in on DSQL.
    DB_USER=${DB_USER:-admin}; DB_NAME=${DB_NAME:-postgres}; DB_AUTH=${DB_AUTH:-dsql-admin}
  else
    [ "$DB_ENGINE" = postgres ] || die "silo tenants need Aurora PostgreSQL; this deployment uses $DB_ENGINE"
    DB_USER=${DB_USER:-app_owner}; DB_AUTH=${DB_AUTH:-iam}
  fi
  load_db_settings
  export DB_AUTH DB_TLS=${DB_TLS:-verify-full} DB_CA_FILE=$(ca_file)
  [ "$DB_AUTH" = password ] || [ -n "$AWS_REGION" ] || die "AWS_REGION is not set: IAM tokens are signed for a region"
fi
[ "${DB_ENGINE:-postgres}" = postgres ] || [ "$1" = plan ] || die "silo tenants need the PostgreSQL engine, not ${DB_ENGINE}"

if [ -n "${DEVSERVER_BIN:-}" ]; then
  exec "$DEVSERVER_BIN" tenant "${args[@]}"
fi
need cargo "install Rust from https://rustup.rs"
exec cargo run -q --release -p devserver -- tenant "${args[@]}"
