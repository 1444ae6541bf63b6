#!/usr/bin/env bash
# Usage: scripts/bootstrap-db.sh [--cluster ID] [--db-name NAME]
#
# The one-time set-up of an Aurora PostgreSQL cluster for the API, as the master user, through
# the RDS Data API: no network path to the cluster is needed (no psql, no bastion). It creates
# the database (unless it exists), the roles app_owner and app_runtime
# (migrations/bootstrap/roles.sql) and grants them rds_iam, so that both log in with IAM tokens
# from then on. Safe to run again. The migrations themselves run in the <name>-migrate function,
# which `terraform apply` invokes.
#
# Needs: the AWS CLI v2; the cluster's HTTP endpoint (Data API) enabled
#   (aws rds enable-http-endpoint --resource-arn <cluster arn>); the master password managed by
#   RDS in Secrets Manager (aws rds modify-db-cluster --db-cluster-identifier <id>
#   --manage-master-user-password --apply-immediately); and, for the caller,
#   rds:DescribeDBClusters, rds-data:ExecuteStatement on the cluster and
#   secretsmanager:GetSecretValue on the master secret (kms:Decrypt with a customer-managed key).
# Settings: --cluster or BOOTSTRAP_CLUSTER (default: `terraform output db_cluster_identifier`),
#   --db-name or BOOTSTRAP_DB_NAME (default: `terraform output db_name`, else app), AWS_REGION,
#   --idle-session-timeout SECONDS or BOOTSTRAP_IDLE_SESSION_TIMEOUT_SECS (default: `terraform
#   output db_idle_session_timeout_seconds`, else 600; 0 disables): app_runtime's default
#   idle_session_timeout, so that idle sessions let Aurora Serverless v2 pause.
#   terraform apply runs it itself for a cluster it creates (or with bootstrap_database = true),
#   with BOOTSTRAP_DATA_API_FIX: what to do when the Data API is off (for a created cluster,
#   the Terraform variable that turns it on, instead of the CLI command).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"

cluster=${BOOTSTRAP_CLUSTER:-}
db_name=${BOOTSTRAP_DB_NAME:-}
idle_timeout=${BOOTSTRAP_IDLE_SESSION_TIMEOUT_SECS:-}
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    --cluster) cluster=${2:?--cluster needs a value}; shift 2;;
    --db-name) db_name=${2:?--db-name needs a value}; shift 2;;
    --idle-session-timeout) idle_timeout=${2:?--idle-session-timeout needs a value}; shift 2;;
    *) die "unknown argument $1 (see --help)";;
  esac
done

need aws "install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)"
if { [ -z "$cluster" ] || [ -z "$db_name" ] || [ -z "$idle_timeout" ]; } && command -v terraform >/dev/null 2>&1 && [ -d "$root/terraform/.terraform" ]; then
  tf() { terraform -chdir="$root/terraform" output -raw "$1" 2>/dev/null || true; }
  cluster=${cluster:-$(tf db_cluster_identifier)}
  db_name=${db_name:-$(tf db_name)}
  idle_timeout=${idle_timeout:-$(tf db_idle_session_timeout_seconds)}
  AWS_REGION=${AWS_REGION:-$(tf aws_region)}
fi
db_name=${db_name:-app}
idle_timeout=${idle_timeout:-600}
[ -n "$cluster" ] || die "which cluster? --cluster <identifier> (or BOOTSTRAP_CLUSTER, or terraform output db_cluster_identifier)"
[[ $db_name =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "--db-name must be a lower-case PostgreSQL identifier, got '$db_name'"
[[ $idle_timeout =~ ^(0|[1-9][0-9]{0,4})$ ]] && { [ "$idle_timeout" -eq 0 ] || { [ "$idle_timeout" -ge 30 ] && [ "$idle_timeout" -le 86400 ]; }; } ||
  die "--idle-session-timeout must be 0 (disabled) or whole seconds from 30 to 86400, got '$idle_timeout'"
region=()
if [ -n "${AWS_REGION:-}" ]; then region=(--region "$AWS_REGION"); fi

read -r arn secret http iam engine < <(aws rds describe-db-clusters "${region[@]}" \
  --db-cluster-identifier "$cluster" --output text \
  --query 'DBClusters[0].[DBClusterArn, MasterUserSecret.SecretArn, HttpEndpointEnabled, IAMDatabaseAuthenticationEnabled, Engine]') ||
  die "cannot describe cluster $cluster (does it exist in ${AWS_REGION:-your default region}?)"
[ "$engine" = aurora-postgresql ] || die "cluster $cluster runs $engine; the API needs aurora-postgresql"
[ "$secret" != None ] || die "cluster $cluster has no RDS-managed master password, which the Data API logs in with.
  aws rds modify-db-cluster --db-cluster-identifier $cluster --manage-master-user-password --apply-immediately"
[ "$http" = True ] || die "the Data API (HTTP endpoint) is not enabled on cluster $cluster.
  ${BOOTSTRAP_DATA_API_FIX:-aws rds enable-http-endpoint --resource-arn $arn ${region[*]}}"
[ "$iam" = True ] || echo "warning: IAM database authentication is not enabled on $cluster yet; the roles will not be able to log in until it is:
  aws rds modify-db-cluster --db-cluster-identifier $cluster --enable-iam-database-authentication --apply-immediately" >&2

# data_api DATABASE SQL [aws options...]: one statement through the Data API as the master
# user; retried while an auto-paused cluster resumes (15 to 30 s).
data_api() {
  local database=$1 sql=$2 attempt out
  shift 2
  for attempt in $(seq 1 12); do
    if out=$(aws rds-data execute-statement "${region[@]}" --resource-arn "$arn" --secret-arn "$secret" \
      --database "$database" --sql "$sql" "$@" 2>&1); then
      printf '%s\n' "$out"
      return 0
    fi
    case $out in
      *DatabaseResumingException*|*"is resuming"*)
        echo "the cluster is resuming; retrying in 5 s ($attempt/12)" >&2; sleep "${BOOTSTRAP_RETRY_SECS:-5}";;
      *) die "Data API ($database): ${sql%%$'\n'*}: $out";;
    esac
  done
  die "the cluster did not resume in time; run this again"
}

# 1. The database.
exists=$(data_api postgres "SELECT count(*) FROM pg_database WHERE datname = :name" \
  --parameters "[{\"name\":\"name\",\"value\":{\"stringValue\":\"$db_name\"}}]" \
  --query 'records[0][0].longValue' --output text)
if [ "$exists" = 0 ]; then
  echo "creating database $db_name"
  data_api postgres "CREATE DATABASE $db_name" >/dev/null
else
  echo "database $db_name exists"
fi

# 2. The roles, one statement at a time (the Data API runs one per call): roles.sql split at
# the semicolons that end a line outside $$ bodies.
echo "creating the roles app_owner and app_runtime in $db_name"
while IFS= read -r -d '' statement; do
  data_api "$db_name" "$statement" >/dev/null
done < <(awk '
  /^[[:space:]]*--/ && !body { next }
  /^[[:space:]]*$/ && stmt == "" { next }
  {
    stmt = stmt $0 "\n"
    n = gsub(/\$\$/, "$$")
    if (n % 2 == 1) body = !body
    if (!body && $0 ~ /;[[:space:]]*$/) { printf "%s%c", stmt, 0; stmt = "" }
  }' "$root/migrations/bootstrap/roles.sql")

# 3. Idle sessions of the API's role end on the server's side (the function sets the same per
# session): a frozen Lambda instance's connection would otherwise keep Aurora from pausing.
echo "app_runtime: idle_session_timeout = ${idle_timeout}s"
data_api "$db_name" "ALTER ROLE app_runtime SET idle_session_timeout = '${idle_timeout}s'" >/dev/null

# 4. IAM logins for both (a role with rds_iam can no longer log in with a password).
data_api "$db_name" "GRANT rds_iam TO app_owner, app_runtime" >/dev/null
echo "done: $db_name with app_owner and app_runtime (rds_iam) on $cluster; migrations run in the migrate function"
