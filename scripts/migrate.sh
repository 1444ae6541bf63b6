#!/usr/bin/env bash
# Usage: scripts/migrate.sh [--bootstrap-roles [--rds-iam]]
#
# Applies the migrations in migrations/ to the configured database; a second run changes
# nothing. By default it logs in like the function does but as the owner role: IAM auth
# (DB_AUTH=iam) as DB_USER=app_owner, TLS verified against the RDS CA bundle (or DB_CA_FILE),
# with DB_HOST, DB_PORT, DB_NAME, AWS_REGION from the environment or `terraform output`.
# MIGRATE_DATABASE_URL=postgres://user:password@host/db?sslmode=verify-full logs in with a
# password instead, e.g. as the master user for the one-time --bootstrap-roles, which creates
# app_owner and app_runtime (and with --rds-iam grants them rds_iam, for IAM logins on Aurora).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
for arg in "$@"; do
  case $arg in --bootstrap-roles|--rds-iam) ;; *) die "unknown option $arg (see --help)";; esac
done

if [ -z "${MIGRATE_DATABASE_URL:-}" ]; then
  DB_USER=${DB_USER:-app_owner}
  load_db_settings
  export DB_AUTH=${DB_AUTH:-iam} DB_TLS=${DB_TLS:-verify-full} DB_CA_FILE=$(ca_file)
  [ "$DB_AUTH" = password ] || [ -n "$AWS_REGION" ] || die "AWS_REGION is not set: IAM tokens are signed for a region"
fi

if [ -n "${DEVSERVER_BIN:-}" ]; then
  exec "$DEVSERVER_BIN" migrate "$@"
fi
need cargo "install Rust from https://rustup.rs"
exec cargo run -q --release -p devserver -- migrate "$@"
