"""The structure tests must be able to fail.

Each case copies the Terraform directory, breaks one thing a deployment needs,
runs the structure tests (test_structure*.py) against the copy (TF_DIR) in a
fresh pytest process and
expects it to FAIL. An unmodified copy must pass, so a failure is the edit's
doing and not the copy's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tfconfig import tf_dir

HERE = Path(__file__).resolve().parent
STRUCTURE_TESTS = sorted(HERE.glob("test_structure*.py"))


def remove_block(text: str, header: str) -> str:
    """Delete the block whose first line matches `header` (a regex), braces balanced."""
    m = re.search(header, text, re.M)
    assert m, f"block {header!r} not found"
    depth = 0
    i = text.index("{", m.start())
    while True:
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    return text[: m.start()] + text[i + 1 :]


def sub(pattern: str, repl: str, flags: int = re.M) -> Callable[[str], str]:
    def edit(text: str) -> str:
        new, n = re.subn(pattern, repl, text, flags=flags)
        assert n >= 1, f"mutation pattern {pattern!r} matched nothing: the Terraform changed, update the mutation"
        return new

    return edit


def drop_block(header: str) -> Callable[[str], str]:
    return lambda text: remove_block(text, header)


# (id, file, edit)
MUTATIONS: list[tuple[str, str, Callable[[str], str]]] = [
    ("remove-default-route", "api_gateway.tf", drop_block(r'^resource "aws_apigatewayv2_route" "default"')),
    ("rds-connect-on-star", "iam.tf", sub(r"resources\s*=\s*\[local\.rds_runtime_arn\]", 'resources = ["*"]')),
    ("rds-connect-any-cluster", "database.tf",
     sub(r'rds_cluster_part\s*=\s*var\.rds_iam_connect_any_cluster \? "\*" : ', 'rds_cluster_part = "*" != "" ? "*" : ')),
    ("migrate-role-any-user", "database.tf", sub(r"/\$\{local\.db_owner_user\}", "/*")),
    ("runtime-al2", "lambda.tf", sub(r'runtime\s*=\s*"provided\.al2023"', 'runtime = "provided.al2"')),
    ("handler-renamed", "lambda.tf", sub(r'handler\s*=\s*"bootstrap"', 'handler = "main"')),
    ("permission-without-source-arn", "api_gateway.tf", sub(r"^\s*source_arn\s*=.*\n", "")),
    ("permission-any-api", "api_gateway.tf", sub(r'source_arn\s*=\s*".*"', 'source_arn = "arn:aws:execute-api:*"')),
    ("permission-for-migrate", "api_gateway.tf",
     sub(r"function_name = aws_lambda_function\.this\.function_name", "function_name = aws_lambda_function.migrate[0].function_name")),
    ("variable-without-description", "variables_dsql.tf",
     sub(r'(variable "db_port" \{\n)\s*description\s*=.*\n', r"\1")),
    ("variable-without-type", "variables_dsql.tf", sub(r'(variable "db_port" \{\n(?:.*\n)*?)\s*type\s*=.*\n', r"\1")),
    ("undeclared-variable", "outputs.tf", sub(r"value\s*=\s*var\.db_engine\b", "value = var.database_engine")),
    ("no-timeout-margin", "lambda.tf",
     sub(r"var\.timeout >= var\.db_connect_timeout_secs \+ 5", "var.timeout >= var.db_connect_timeout_secs")),
    ("no-connection-budget", "lambda.tf",
     sub(r"local\.reserved_concurrency <= local\.db_connection_budget", "true")),
    ("budget-ignores-max-acu", "locals.tf", sub(r"local\.create_cluster \? local\.cluster_max_connections - 20 : 150", "150")),
    ("payload-format-1", "api_gateway.tf", sub(r'payload_format_version\s*=\s*"2\.0"', 'payload_format_version = "1.0"')),
    ("integration-not-proxy", "api_gateway.tf", sub(r'integration_type\s*=\s*"AWS_PROXY"', 'integration_type = "AWS"')),
    ("stage-without-auto-deploy", "api_gateway.tf", sub(r"auto_deploy\s*=\s*true", "auto_deploy = false")),
    ("stage-without-access-log", "api_gateway.tf", drop_block(r"^\s*access_log_settings \{")),
    ("function-before-log-group", "lambda.tf", sub(r"^\s*aws_cloudwatch_log_group\.lambda,\n", "")),
    ("retention-7-days", "variables.tf",
     sub(r'(variable "log_retention_days" \{\n(?:.*\n)*?\s*default\s*=\s*)14', r"\g<1>7")),
    ("x86-by-default", "variables.tf",
     sub(r'(variable "architecture" \{\n(?:.*\n)*?\s*default\s*=\s*)"arm64"', r'\1"x86_64"')),
    ("env-without-db-host", "database.tf", sub(r"^\s*DB_HOST\s*=.*\n", "")),
    ("env-pool-of-ten", "locals.tf", sub(r'DB_POOL_MAX = "1"\n    LOG_LEVEL   = var\.log_level', 'DB_POOL_MAX = "10"\n    LOG_LEVEL   = var.log_level')),
    ("no-wildcard-warning", "checks.tf", drop_block(r'^check "rds_connect_scoped"')),
    ("output-missing", "outputs.tf", drop_block(r'^output "api_url"')),
    ("unjustified-checkov-skip", "lambda.tf", sub(r"(#checkov:skip=CKV_AWS_116):[^\n]*", r"\1")),
    # Issue 11's defects
    ("preflight-route-always", "api_gateway.tf", sub(r"count = local\.cors_preflight_route \? 1 : 0\n", "")),
    ("preflight-route-needs-token", "api_gateway.tf",
     sub(r'(route_key          = "OPTIONS /\{proxy\+\}"\n.*\n)  authorization_type = "NONE"', r'\1  authorization_type = "JWT"')),
    ("preflight-without-cors", "locals.tf",
     sub(r"cors_preflight_route = local\.use_apigw_jwt && length\(var\.cors_allow_origins\) > 0", "cors_preflight_route = local.use_apigw_jwt")),
    ("no-cors-env", "locals.tf", sub(r"^\s*CORS_ALLOW_ORIGINS\s*=.*\n", "")),
    ("iam-auth-not-required", "database.tf",
     drop_block(r"^\s*postcondition \{\n\s*condition\s*=\s*self\.iam_database_authentication_enabled")),
    ("no-region-check", "lambda.tf", sub(r"local\.db_region == null \|\| local\.db_region == local\.region", "true")),
    ("no-arn-region-check", "database.tf",
     sub(r"local\.cluster_arn_region == null \|\| local\.cluster_arn_region == data\.aws_region\.current\.region", "true")),
    ("db-name-upper-case", "variables_database.tf", sub(r'\^\[a-z_\]\[a-z0-9_\]\{0,62\}\$", var\.db_name', '^[A-Za-z_][A-Za-z0-9_$]{0,62}$", var.db_name')),
    ("db-user-dollar", "variables_database.tf", sub(r'\^\[a-z_\]\[a-z0-9_\]\{0,62\}\$", var\.db_user', '^[a-z_][a-z0-9_$]{0,62}$", var.db_user')),
    ("no-throttling-check", "checks.tf", drop_block(r'^check "throttling_within_concurrency"')),
    ("no-headroom-check", "checks.tf", drop_block(r'^check "deploy_headroom"')),
    ("basic-execution-role", "iam.tf",
     sub(r'^resource "aws_iam_role_policy_attachment" "lambda_xray" \{',
         'resource "aws_iam_role_policy_attachment" "lambda_basic" {\n  role       = aws_iam_role.lambda.name\n'
         '  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"\n}\n\n'
         'resource "aws_iam_role_policy_attachment" "lambda_xray" {')),
    ("logs-on-every-group", "iam.tf",
     sub(r"resources = \[aws_cloudwatch_log_group\.lambda\.arn, \"\$\{aws_cloudwatch_log_group\.lambda\.arn\}:\*\"\]", 'resources = ["*"]')),
    ("role-without-path", "iam.tf", sub(r"^\s*path\s*=\s*var\.iam_role_path\n", "")),
    ("role-without-boundary", "iam.tf", sub(r"^\s*permissions_boundary\s*=\s*var\.iam_permissions_boundary_arn\n", "")),
    ("bearer-without-issuer", "lambda.tf",
     sub(r"!local\.use_bearer_jwt \|\| \(var\.jwt_issuer != null && var\.jwt_audience != null\)", "true")),
    ("no-jwks-env", "locals.tf", sub(r"^\s*JWT_JWKS\s*=.*\n", "")),
    # The private cluster
    ("migrate-as-runtime-user", "locals.tf", sub(r'"admin" : local\.db_owner_user', '"admin" : var.db_user')),
    ("migrate-other-package", "migrate.tf", sub(r'^(\s*)handler(\s*)=\s*"bootstrap"', r'\1handler\2= "migrate"')),
    ("migrations-not-hashed", "migrate.tf", sub(r"migrations(\s*)= local\.migrations_hash", r'migrations\1= "static"')),
    ("migrate-wrong-event", "migrate.tf", sub(r'jsonencode\(\{ action = "migrate" \}\)', 'jsonencode({ action = "run" })')),
    ("api-before-migrations", "lambda.tf", sub(r"^\s*aws_lambda_invocation\.migrate,\n", "")),
    ("migrations-before-roles", "migrate.tf", sub(r"^\s*terraform_data\.bootstrap_database,\n", "")),
    ("cluster-without-iam-auth", "cluster.tf", sub(r"iam_database_authentication_enabled = true", "iam_database_authentication_enabled = false")),
    ("cluster-password-in-state", "cluster.tf", sub(r"manage_master_user_password\s*=\s*true", 'master_password = "change-me"')),
    ("cluster-unencrypted", "cluster.tf", sub(r"storage_encrypted\s*=\s*true", "storage_encrypted = false")),
    ("cluster-without-data-api", "cluster.tf", sub(r"enable_http_endpoint(\s*)= var\.cluster_data_api", r"enable_http_endpoint\1= false")),
    ("cluster-open-to-the-vpc", "cluster.tf",
     sub(r"referenced_security_group_id = aws_security_group\.functions\[0\]\.id", 'cidr_ipv4 = "10.0.0.0/8"')),
    # Issue 14: idle sessions, metrics, alarms, dashboard
    ("no-idle-session-timeout-env", "locals.tf", sub(r"^\s*DB_IDLE_SESSION_TIMEOUT_SECS\s*=.*\n", "")),
    ("idle-session-timeout-off-by-default", "variables_database.tf",
     sub(r'(variable "db_idle_session_timeout_seconds" \{\n(?:.*\n)*?\s*default\s*=\s*)600', r"\g<1>0")),
    ("no-metrics-namespace-env", "locals.tf", sub(r"^\s*METRICS_NAMESPACE\s*=.*\n", "")),
    ("tenant-dimension-on-by-default", "variables_observability.tf",
     sub(r'(variable "metrics_tenant_dimension" \{\n(?:.*\n)*?\s*default\s*=\s*)false', r"\g<1>true")),
    ("alarm-wrong-metric-name", "observability.tf", sub(r'metric_name(\s*)= "Latency"', r'metric_name\1= "LatencyMs"')),
    ("alarm-5xx-wrong-metric-name", "observability.tf", sub(r'metric_name = "Errors5xx"', 'metric_name = "Errors"')),
    ("alarm-wrong-namespace", "observability.tf",
     sub(r'namespace(\s*)= var\.metrics_namespace\n(\s*)metric_name(\s*)= "DbConnectFailures"',
         r'namespace\1= "TenantApi"\n\2metric_name\3= "DbConnectFailures"')),
    ("alarm-wrong-dimension", "observability.tf",
     sub(r'dimensions(\s*)= \{ FunctionName = aws_lambda_function\.this\.function_name \}',
         r'dimensions\1= { Service = aws_lambda_function.this.function_name }')),
    ("alarm-without-ok-action", "observability.tf",
     sub(r'(alarm_name(\s*)= "\$\{var\.name\}-throttles"\n(?:.*\n)*?)\s*ok_actions\s*=.*\n', r"\1")),
    ("alarm-without-alarm-action", "observability.tf",
     sub(r'(alarm_name(\s*)= "\$\{var\.name\}-db-connect-failures"\n(?:.*\n)*?)\s*alarm_actions\s*=.*\n', r"\1")),
    ("alarms-always-on", "observability.tf",
     sub(r'(resource "aws_cloudwatch_metric_alarm" "latency_p99" \{\n)  count = var\.alarms_enabled \? 1 : 0\n', r"\1")),
    ("alarm-missing", "observability.tf", drop_block(r'^resource "aws_cloudwatch_metric_alarm" "throttles"')),
    ("alarm-topic-aws-managed-key", "observability.tf",
     sub(r"kms_master_key_id = aws_kms_key\.alarms\[0\]\.arn", 'kms_master_key_id = "alias/aws/sns"')),
    ("dashboard-always-on", "dashboard.tf", sub(r"count = var\.dashboard_enabled \? 1 : 0\n", "")),
    ("dashboard-without-p99", "dashboard.tf", sub(r'\{ stat = "p99", label = "p99" \}', '{ stat = "Average", label = "p99" }')),
    # Idempotency-Key records: the scheduled cleanup and the record life
    ("cleanup-wrong-input", "idempotency.tf",
     sub(r'jsonencode\(\{ action = "cleanup" \}\)', 'jsonencode({ action = "migrate" })')),
    ("cleanup-extra-input-field", "idempotency.tf",
     sub(r'jsonencode\(\{ action = "cleanup" \}\)', 'jsonencode({ action = "cleanup", batch = "500" })')),
    ("cleanup-without-input", "idempotency.tf", sub(r"^\s*input = jsonencode.*\n", "")),
    ("cleanup-without-permission", "idempotency.tf", drop_block(r'^resource "aws_lambda_permission" "idempotency_cleanup"')),
    ("cleanup-permission-any-rule", "idempotency.tf",
     sub(r"source_arn(\s*)= aws_cloudwatch_event_rule\.idempotency_cleanup\.arn", r'source_arn\1= "arn:aws:events:*:*:rule/*"')),
    ("cleanup-permission-without-source-arn", "idempotency.tf",
     sub(r"^\s*source_arn\s*= aws_cloudwatch_event_rule\.idempotency_cleanup\.arn\n", "")),
    ("cleanup-targets-migrate", "idempotency.tf",
     sub(r"arn(\s*)= aws_lambda_function\.this\.arn", r"arn\1= aws_lambda_function.migrate[0].arn")),
    ("cleanup-without-target", "idempotency.tf", drop_block(r'^resource "aws_cloudwatch_event_target" "idempotency_cleanup"')),
    ("cleanup-fixed-schedule", "idempotency.tf",
     sub(r"schedule_expression = var\.idempotency_cleanup_schedule", 'schedule_expression = "rate(1 hour)"')),
    ("cleanup-rule-untagged", "idempotency.tf",
     sub(r'(schedule_expression = var\.idempotency_cleanup_schedule\n)\s*tags\s*= local\.tags\n', r"\1")),
    ("no-idempotency-ttl-env", "locals.tf", sub(r"^\s*IDEMPOTENCY_TTL_SECS\s*=.*\n", "")),
    ("idempotency-ttl-one-hour", "variables_idempotency.tf",
     sub(r'(variable "idempotency_ttl_seconds" \{\n(?:.*\n)*?\s*default\s*=\s*)86400', r"\g<1>3600")),
    # Issue 12: Aurora DSQL
    ("dsql-connect-on-star", "iam.tf",
     sub(r'(actions   = \["dsql:DbConnect"\]\n\s*)resources = \[local\.dsql_cluster_arn\]', r'\1resources = ["*"]')),
    ("dsql-connect-any-cluster", "dsql.tf",
     sub(r"aws_dsql_cluster\.this\[0\]\.arn : var\.dsql_cluster_arn", 'aws_dsql_cluster.this[0].arn : "arn:aws:dsql:*:*:cluster/*"')),
    ("dsql-api-as-admin", "iam.tf", sub(r'actions   = \["dsql:DbConnect"\]', 'actions   = ["dsql:DbConnectAdmin"]')),
    ("dsql-api-also-admin", "iam.tf", sub(r'actions   = \["dsql:DbConnect"\]', 'actions   = ["dsql:DbConnect", "dsql:DbConnectAdmin"]')),
    ("dsql-migrate-admin-on-star", "iam.tf",
     sub(r'(actions   = \["dsql:DbConnectAdmin"\]\n\s*)resources = \[local\.dsql_cluster_arn\]', r'\1resources = ["*"]')),
    ("dsql-grant-always", "iam.tf",
     sub(r'for_each = local\.use_dsql \? \[1\] : \[\]\n\n    content \{\n      sid       = "DsqlConnect"',
         'for_each = [1]\n\n    content {\n      sid       = "DsqlConnect"')),
    ("dedicated-any-cluster", "iam.tf",
     sub(r"\$\{d\.cluster_resource_id\}/\$\{d\.user\}", "*/${d.user}")),
    ("dedicated-grant-always", "iam.tf",
     sub(r"local\.use_rds && length\(var\.dedicated_database_users\) > 0 \? \[1\] : \[\]", "[1]")),
    ("placement-cap-unwired", "locals.tf", sub(r"^\s*DB_PLACEMENT_MAX_CONNECTIONS = .*\n", "")),
    ("dsql-deletion-protection-off", "dsql.tf",
     sub(r"deletion_protection_enabled = var\.cluster_deletion_protection", "deletion_protection_enabled = false")),
    ("dsql-cluster-untagged", "dsql.tf", sub(r"^\s*tags = merge\(local\.tags, .*\n", "")),
    ("dsql-cluster-always", "dsql.tf", sub(r"count = local\.create_dsql_cluster \? 1 : 0\n", "")),
    ("dsql-cluster-aws-key-only", "dsql.tf", sub(r"^\s*kms_encryption_key = var\.cluster_kms_key_arn\n", "")),
    ("dsql-endpoint-wrong-domain", "dsql.tf", sub(r"\.dsql\.\$\{local\.region\}\.on\.aws", ".dsql.${local.region}.amazonaws.com")),
    ("dsql-db-host-ignored", "dsql.tf", sub(r"var\.db_host != null \? var\.db_host : ", "")),
    ("dsql-no-runtime-role-arn", "migrate.tf", sub(r"\{ DSQL_RUNTIME_ROLE_ARN = aws_iam_role\.lambda\.arn \}", "{}")),
    ("dsql-runtime-role-is-migrate-role", "migrate.tf",
     sub(r"DSQL_RUNTIME_ROLE_ARN = aws_iam_role\.lambda\.arn", "DSQL_RUNTIME_ROLE_ARN = aws_iam_role.migrate.arn")),
    ("dsql-api-admin-token", "locals.tf", sub(r'db_auth         = local\.use_dsql \? "dsql" : "iam"', 'db_auth         = local.use_dsql ? "dsql-admin" : "iam"')),
    ("dsql-migrate-custom-role-token", "locals.tf",
     sub(r'migrate_db_auth = local\.use_dsql \? "dsql-admin" : "iam"', 'migrate_db_auth = local.use_dsql ? "dsql" : "iam"')),
    ("dsql-migrate-as-runtime", "locals.tf", sub(r'local\.use_dsql \? "admin" : local\.db_owner_user', 'local.use_dsql ? "app_runtime" : local.db_owner_user')),
    ("dsql-db-name-app", "locals.tf", sub(r'local\.use_dsql \? "postgres" : coalesce', 'local.use_dsql ? "app" : coalesce')),
    ("dsql-engine-env-postgres", "locals.tf", sub(r'db_engine_env   = local\.use_dsql \? "dsql" : "postgres"', 'db_engine_env   = "postgres"')),
    ("no-engine-env", "locals.tf", sub(r"^\s*DB_ENGINE               = local\.db_engine_env\n    DB_NAME                 = local\.db_name\n    DB_USER                 = var\.db_user",
                                       "    DB_NAME                 = local.db_name\n    DB_USER                 = var.db_user")),
    ("dsql-budget-aurora-math", "locals.tf", sub(r"^\s*local\.use_dsql \? local\.dsql_max_connections - 20 :\n", "")),
    ("dsql-budget-5000", "locals.tf", sub(r"dsql_max_connections  = 10000", "dsql_max_connections  = 5000")),
    ("dsql-no-rate-check", "checks.tf", drop_block(r'^check "dsql_connection_rate"')),
    ("dsql-no-network-check", "checks.tf", drop_block(r'^check "dsql_network"')),
    ("dsql-host-other-cluster", "lambda.tf",
     sub(r"local\.dsql_host_cluster_id == null \|\| local\.dsql_arn_cluster_id == null \|\| \(.*\)\n", "true\n")),
    ("dsql-custom-db-user", "lambda.tf",
     sub(r'!local\.use_dsql \|\| \(var\.db_name == null && var\.db_user == "app_runtime" && !var\.bootstrap_database\)', "true")),
    ("dsql-two-clusters", "iam.tf",
     sub(r"!local\.use_dsql \|\| \(\(var\.dsql_cluster_arn != null\) != var\.create_cluster\)", "true")),
    ("db-auth-unchecked", "lambda.tf", sub(r"var\.db_auth == null \|\| var\.db_auth == local\.db_auth", "true")),
    ("dsql-aurora-migrations", "migrate.tf",
     sub(r'local\.use_dsql \? "\$\{path\.module\}/\.\./migrations/dsql" : ', "")),
    ("dsql-no-migrations-on-apply", "locals.tf", sub(r"run_migrations      = var\.migrate_on_apply", "run_migrations      = local.use_rds && var.migrate_on_apply")),
    ("engine-default-dsql", "variables_database.tf",
     sub(r'(variable "db_engine" \{\n(?:.*\n)*?\s*default\s*=\s*)"aurora-postgresql"', r'\1"dsql"')),
    # Issue 20: the first apply on a new account, destroy and create again, a second Region
    ("reserved-concurrency-by-default", "variables.tf",
     sub(r'(variable "reserved_concurrent_executions" \{\n(?:.*\n)*?\s*default\s*=\s*)null', r"\g<1>10")),
    ("name-allows-48", "variables.tf", sub(r"\^\[a-z\]\[a-z0-9-\]\{0,39\}\$", "^[a-z][a-z0-9-]{0,47}$")),
    ("role-name-without-region", "iam.tf", sub(r'"\$\{var\.name\}-lambda-\$\{local\.region\}"', '"${var.name}-lambda"')),
    ("role-name-length-unchecked", "iam.tf", sub(r"length\(local\.migrate_role_name\) <= 64", "true")),
    ("engine-minor-pinned", "variables_database.tf",
     sub(r'(variable "cluster_engine_version" \{\n(?:.*\n)*?\s*default\s*=\s*)"16"', r'\g<1>"16.6"')),
    ("engine-version-not-looked-up", "cluster.tf",
     sub(r"engine_version(\s*)= data\.aws_rds_engine_version\.cluster\[0\]\.version_actual", r"engine_version\1= var.cluster_engine_version")),
    ("auto-pause-any-version", "cluster.tf", sub(r"condition(\s*)= var\.cluster_min_acu > 0 \|\| .*\n", r"condition\1= true\n")),
    ("migrations-ignore-runtime-role", "migrate.tf", sub(r"^\s*runtime_role(_id)?\s*= aws_iam_role\.lambda\.(arn|unique_id)\n", "")),
    ("migrations-before-login-policy", "migrate.tf",
     sub(r"(terraform_data\.bootstrap_database,\n)\s*aws_iam_role_policy\.migrate,\n", r"\1")),
    ("final-snapshot-fixed-name", "cluster.tf",
     sub(r'final_snapshot_identifier = "\$\{var\.name\}-final-\$\{[^\n]*\}"', 'final_snapshot_identifier = "${var.name}-final"')),
    ("final-snapshot-skipped", "cluster.tf", sub(r"skip_final_snapshot(\s*)= var\.cluster_skip_final_snapshot", r"skip_final_snapshot\1= true")),
    ("no-destroy-guard", "cluster.tf", drop_block(r'^resource "terraform_data" "cluster_destroy_guard"')),
    ("destroy-guard-after-writer", "cluster.tf", sub(r"^\s*depends_on = \[aws_rds_cluster_instance\.writer\]\n", "")),
    ("no-egress-to-dedicated", "cluster.tf", drop_block(r'^resource "aws_vpc_security_group_egress_rule" "functions_to_dedicated_by_group"')),
    ("no-dedicated-reachability-check", "checks.tf", drop_block(r'^check "dedicated_databases_reachable"')),
]


def run_structure_tests(directory: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_DIR=str(directory), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir", str(HERE),
         *map(str, STRUCTURE_TESTS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=300,
    )


def copy_config(dest: Path) -> Path:
    src = tf_dir()
    target = dest / "terraform"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("tests", ".terraform", "*.tfstate*", "__pycache__"))
    return target


def test_unmodified_copy_passes(tmp_path: Path):
    proc = run_structure_tests(copy_config(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize(("fname", "edit"), [(f, e) for _, f, e in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught(tmp_path: Path, fname: str, edit: Callable[[str], str]):
    target = copy_config(tmp_path)
    path = target / fname
    original = path.read_text(encoding="utf-8")
    mutated = edit(original)
    assert mutated != original
    path.write_text(mutated, encoding="utf-8")
    proc = run_structure_tests(target)
    # 1 = tests ran and failed. Anything else (2 interrupted, 4 usage, 5 no tests)
    # would mean the suite broke instead of catching the mutation.
    assert proc.returncode == 1, f"mutation not caught (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    assert re.search(r"\b1 failed\b", proc.stdout), proc.stdout[-3000:]
