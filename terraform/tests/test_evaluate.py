"""Evaluate the configuration's own expressions with the real `terraform`.

variables*.tf and locals.tf reference no provider, so a copy of just those
files initialises offline, and `terraform console` evaluates:
  * every variable's `validation` (bad values must be refused, good ones kept);
  * the environment the function gets in each identity mode;
  * the lifecycle preconditions of the function and the `check` assertions,
    taken verbatim from lambda.tf / checks.tf, under good and bad inputs; where
    they read the cluster or the region, those references are replaced by
    literals (test_evaluate_database.py).
Skipped when terraform is not installed (scripts/check-terraform.sh requires it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tfconfig import TfConfig, preconditions, text_of, unwrap

TERRAFORM = shutil.which("terraform")
pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

HOST = "app.cluster-abc123xyz.eu-central-1.rds.amazonaws.com"
PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexample\n-----END PUBLIC KEY-----\n"
SECRET = "s" * 40
JWKS = '{"keys":[{"kty":"EC","kid":"2026-11","crv":"P-256","x":"abc","y":"def"}]}'


class TfError(Exception):
    pass


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["CHECKPOINT_DISABLE"] = "1"  # no version check over the network
    env["TF_IN_AUTOMATION"] = "1"
    cli_config = env.get("TF_CLI_CONFIG_FILE")
    if cli_config and not Path(cli_config).exists():
        env.pop("TF_CLI_CONFIG_FILE")
    return env


class Console:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.n = 0

    def eval(self, expr: str, **variables):
        """Value of `expr` (JSON-decoded) with the given variables; TfError on any error."""
        self.n += 1
        var_file = self.workdir / f"case{self.n}.tfvars.json"
        var_file.write_text(json.dumps(variables), encoding="utf-8")
        proc = subprocess.run(
            [TERRAFORM, "console", "-no-color", f"-var-file={var_file}"],
            input=f"jsonencode({expr})\n",
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=_env(),
            timeout=120,
        )
        if "Error:" in proc.stderr or proc.returncode != 0:
            raise TfError(proc.stderr.strip())
        out = proc.stdout.strip()
        if out == "(sensitive value)":
            return "(sensitive value)"
        return json.loads(json.loads(out.replace("$${", "${").replace("%%{", "%{")))




# ---------------------------------------------------------------------------
# Validation of single variables
# ---------------------------------------------------------------------------

REFUSED = [
    ("architecture", "x86"),
    ("architecture", "aarch64"),
    ("memory_size", 64),
    ("memory_size", 10241),
    ("memory_size", 128.5),
    ("timeout", 0),
    ("timeout", 901),
    ("reserved_concurrent_executions", -2),
    ("log_retention_days", 15),
    ("log_level", "verbose"),
    ("db_host", "https://app.cluster-abc.eu-central-1.rds.amazonaws.com"),
    ("db_host", "app.cluster-abc.eu-central-1.rds.amazonaws.com:5432"),
    ("db_host", "app.cluster-ro-abc123xyz.eu-central-1.rds.amazonaws.com"),
    ("db_host", "localhost"),
    ("db_port", 0),
    ("db_port", 70000),
    ("db_name", "my-app"),
    ("db_name", "App"),
    ("db_name", "app$1"),
    ("db_name", "postgres"),
    ("db_user", "app runtime"),
    ("db_user", "AppRuntime"),
    ("db_user", "app$runtime"),
    ("db_user", "app_owner"),
    ("db_user", "rdsadmin"),
    ("db_auth", "password"),
    ("db_cluster_identifier", "My-Cluster"),
    ("db_cluster_identifier", "cluster--x"),
    ("db_cluster_identifier", "1cluster"),
    ("db_cluster_identifier", "arn:aws:rds:eu-central-1:123456789012:db:app"),
    ("dsql_cluster_arn", "arn:aws:rds:us-east-1:123456789012:cluster:x"),
    ("db_connect_timeout_secs", 0),
    ("db_max_connections", 0),
    ("jwt_algorithm", "none"),
    ("jwt_algorithm", "RS512"),
    ("jwt_audience", "a,b"),
    ("bearer_jwt_public_key_pem", "not a key"),
    ("bearer_jwt_hs256_secret", "short"),
    ("subnet_ids", ["subnet-xyz"]),
    ("security_group_ids", ["default"]),
    ("aws_region", "Frankfurt"),
    ("name", "has spaces"),
    ("name", "x" * 49),
    ("name", "x" * 41),
    ("lambda_zip_path", "dist/bootstrap"),
    ("log_kms_key_arn", "alias/logs"),
    ("bearer_jwt_jwks", "not json"),
    ("bearer_jwt_jwks", '{"keys":[]}'),
    ("bearer_jwt_jwks", '{"keys":[{"kty":"EC"}]}'),
    ("cors_allow_origins", ["https://app.example.com/path"]),
    ("name", "Tenant-API"),
    ("name", "tenant-"),
    ("iam_role_path", "service"),
    ("iam_role_path", "/service"),
    ("iam_permissions_boundary_arn", "boundary"),
    ("tags", {"aws:owner": "x"}),
    ("migrate_timeout", 30),
    ("cluster_min_acu", 0.25),
    ("cluster_max_acu", 0.5),
    ("cluster_max_acu", 300),
    ("cluster_seconds_until_auto_pause", 60),
    ("cluster_engine_version", "12.9"),
    ("cluster_engine_version", "13.15"),
    ("cluster_backup_retention_days", 0),
    ("cluster_kms_key_arn", "alias/aws/rds"),
    ("db_max_connections", 1.5),
    ("plans", {"plan": {"free": {"todos": 1}}}),
    ("plans", {"plans": {"Gold": {"todos": 1}}}),
    ("plans", {"plans": {"free": {"todos": 0}}}),
    ("plans", {"plans": {"free": {"seats": 3}}}),
]

ACCEPTED = [
    ("architecture", "x86_64"),
    ("memory_size", 10240),
    ("timeout", 900),
    ("reserved_concurrent_executions", -1),
    ("reserved_concurrent_executions", 0),
    ("log_retention_days", 0),
    ("log_retention_days", 3653),
    ("db_host", "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"),
    ("db_cluster_identifier", "my-aurora-cluster"),
    ("db_cluster_identifier", "arn:aws:rds:eu-central-1:123456789012:cluster:my-aurora-cluster"),
    ("db_name", "tenants_2"),
    ("dsql_cluster_arn", "arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrstuvwxyz"),
    ("aws_region", "us-gov-west-1"),
    ("subnet_ids", ["subnet-0123456789abcdef0"]),
    ("security_group_ids", ["sg-0123456789abcdef0"]),
    ("bearer_jwt_public_key_pem", PEM),
    ("bearer_jwt_jwks", JWKS),
    ("log_kms_key_arn", "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    ("cors_allow_origins", ["https://app.example.com", "*"]),
    ("iam_role_path", "/service/tenant-api/"),
    ("iam_permissions_boundary_arn", "arn:aws:iam::123456789012:policy/boundary"),
    ("cluster_min_acu", 0.5),
    ("cluster_max_acu", 1.5),
    ("db_max_connections", None),
    ("plans", {"default": "standard", "plans": {"free": {"todos": 200, "rate": 0.5}}}),
]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=[f"{n}={v!r:.40}" for n, v in REFUSED])
def test_validation_refuses(tf: Console, name: str, value):
    with pytest.raises(TfError, match=rf"(?s)Invalid value for variable.*var\.{name}|Invalid value for variable.*{name}"):
        tf.eval("var." + name, **{name: value})


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=[f"{n}={v!r:.40}" for n, v in ACCEPTED])
def test_validation_accepts(tf: Console, name: str, value):
    assert tf.eval("var." + name, **{name: value}) == value


def test_explicit_null_falls_back_to_the_default(tf: Console):
    assert tf.eval("var.timeout", timeout=None) == 40


# ---------------------------------------------------------------------------
# The function's environment per identity mode
# ---------------------------------------------------------------------------

BASE_ENV = {
    "APP_FUNCTION": "api",
    "DB_ENGINE": "postgres",
    "DB_NAME": "app",
    "DB_USER": "app_runtime",
    "DB_AUTH": "iam",
    "DB_CONNECT_TIMEOUT_SECS": "30",
    "DB_STATEMENT_TIMEOUT_MS": "10000",
    "DB_IDLE_SESSION_TIMEOUT_SECS": "600",
    "DB_PLACEMENT_MAX_CONNECTIONS": "2",
    "DB_POOL_MAX": "1",
    "LOG_LEVEL": "info",
    "METRICS_NAMESPACE": "TenantApi",
    "METRICS_TENANT_DIMENSION": "false",
    "IDEMPOTENCY_TTL_SECS": "86400",
}


def test_environment_closed_by_default(tf: Console):
    assert tf.eval("local.lambda_environment") == {**BASE_ENV, "IDENTITY_SOURCES": ""}
    assert tf.eval("local.use_apigw_jwt") is False


def test_environment_apigw_jwt(tf: Console):
    v = {"jwt_issuer": "https://issuer.example.com", "jwt_audience": "client-1"}
    assert tf.eval("local.lambda_environment", **v) == {
        **BASE_ENV,
        "IDENTITY_SOURCES": "apigw_jwt",
        "JWT_ISSUER": "https://issuer.example.com",
        "JWT_AUDIENCE": "client-1",
    }
    assert tf.eval("local.use_apigw_jwt", **v) is True


def test_environment_bearer_jwt_public_key_wins_over_authorizer(tf: Console):
    v = {"jwt_issuer": "https://issuer.example.com", "jwt_audience": "client-1",
         "bearer_jwt_public_key_pem": PEM, "jwt_algorithm": "ES256"}
    assert tf.eval("local.lambda_environment", **v) == {
        **BASE_ENV,
        "IDENTITY_SOURCES": "bearer_jwt",
        "JWT_ISSUER": "https://issuer.example.com",
        "JWT_AUDIENCE": "client-1",
        "JWT_ALGORITHM": "ES256",
        "JWT_PUBLIC_KEY": PEM,
    }
    assert tf.eval("local.use_apigw_jwt", **v) is False


def test_environment_bearer_jwt_with_a_key_set(tf: Console):
    v = {"jwt_issuer": "https://issuer.example.com", "jwt_audience": "client-1", "bearer_jwt_jwks": JWKS}
    env = tf.eval("local.lambda_environment", **v)
    assert env["IDENTITY_SOURCES"] == "bearer_jwt" and env["JWT_JWKS"] == JWKS
    assert "JWT_PUBLIC_KEY" not in env and "JWT_HS256_SECRET" not in env
    assert tf.eval("local.use_apigw_jwt", **v) is False


def test_environment_hs256_is_sensitive_and_carries_the_secret(tf: Console):
    v = {"bearer_jwt_hs256_secret": SECRET, "jwt_algorithm": "HS256"}
    assert tf.eval("local.lambda_environment", **v) == "(sensitive value)"
    assert tf.eval("jsondecode(nonsensitive(jsonencode(local.lambda_environment)))", **v) == {
        **BASE_ENV,
        "IDENTITY_SOURCES": "bearer_jwt",
        "JWT_ALGORITHM": "HS256",
        "JWT_HS256_SECRET": SECRET,
    }


def test_environment_settings_flow_through(tf: Console):
    env = tf.eval("local.lambda_environment", db_name="tenants", db_user="svc",
                  db_connect_timeout_secs=20, db_statement_timeout_ms=5000, log_level="debug")
    assert env["DB_NAME"] == "tenants" and env["DB_USER"] == "svc"
    assert env["DB_AUTH"] == "iam" and env["DB_CONNECT_TIMEOUT_SECS"] == "20"
    assert env["DB_STATEMENT_TIMEOUT_MS"] == "5000" and env["LOG_LEVEL"] == "debug"
    # db_auth no longer decides anything: db_engine does (test_evaluate_dsql.py).
    assert tf.eval("local.lambda_environment", db_auth="iam")["DB_AUTH"] == "iam"


def test_zip_path_default(tf: Console):
    assert tf.eval("local.lambda_zip_path") == "./../dist/lambda.zip"
    assert tf.eval("local.lambda_zip_path", lambda_zip_path="/tmp/x.zip") == "/tmp/x.zip"


# ---------------------------------------------------------------------------
# Preconditions (lambda.tf) and checks (checks.tf), evaluated as written
# ---------------------------------------------------------------------------


def _function_condition(cfg: TfConfig, pattern: str) -> str:
    fn = cfg.resource("aws_lambda_function", "this")
    found = [unwrap(p["condition"]) for p in preconditions(fn) if re.search(pattern, text_of(p["condition"]))]
    assert len(found) == 1, f"expected one precondition matching {pattern!r}, found {found}"
    return found[0]


PRECONDITIONS = [
    # (pattern identifying the precondition, variables, expected result)
    (r"db_connect_timeout_secs", {}, True),
    (r"db_connect_timeout_secs", {"timeout": 34}, False),
    (r"db_connect_timeout_secs", {"timeout": 25, "db_connect_timeout_secs": 20}, True),
    (r"db_statement_timeout_ms", {}, True),
    (r"db_statement_timeout_ms", {"db_statement_timeout_ms": 40000}, False),
    (r"<= local.db_connection_budget", {}, True),
    (r"<= local.db_connection_budget", {"reserved_concurrent_executions": 151}, False),
    (r"<= local.db_connection_budget", {"reserved_concurrent_executions": 190, "db_max_connections": 189}, False),
    (r"<= local.db_connection_budget", {"reserved_concurrent_executions": 189, "db_max_connections": 189}, True),
    (r"<= local.db_connection_budget", {"reserved_concurrent_executions": -1, "db_max_connections": 5}, True),
    # A created cluster: the budget follows max ACU (189 per ACU, minus 20).
    (r"<= local.db_connection_budget", {"create_cluster": True, "cluster_max_acu": 1, "reserved_concurrent_executions": 169}, True),
    (r"<= local.db_connection_budget", {"create_cluster": True, "cluster_max_acu": 1, "reserved_concurrent_executions": 170}, False),
    (r"<= local.cluster_max_connections", {}, True),
    (r"<= local.cluster_max_connections", {"create_cluster": True, "db_max_connections": 400}, False),
    (r"<= local.cluster_max_connections", {"create_cluster": True, "db_max_connections": 378}, True),
    (r"subnet_ids", {}, True),
    (r"subnet_ids", {"subnet_ids": ["subnet-0123456789abcdef0"]}, False),
    (r"subnet_ids", {"security_group_ids": ["sg-0123456789abcdef0"]}, False),
    (r"subnet_ids", {"subnet_ids": ["subnet-0123456789abcdef0"], "security_group_ids": ["sg-0123456789abcdef0"]}, True),
    (r"subnet_ids", {"create_cluster": True, "subnet_ids": ["subnet-0123456789abcdef0"]}, False),
    (r"subnet_ids", {"create_cluster": True, "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]}, True),
    # Aurora PostgreSQL: an existing cluster or a created one, exactly one.
    (r"db_cluster_identifier != null", {}, False),
    (r"db_cluster_identifier != null", {"db_cluster_identifier": "app"}, True),
    (r"db_cluster_identifier != null", {"create_cluster": True}, True),
    (r"db_cluster_identifier != null", {"create_cluster": True, "db_cluster_identifier": "app"}, False),
    (r"db_cluster_identifier != null", {"db_engine": "dsql"}, True),
    # db_host: only for an existing DSQL cluster, and optional there.
    (r"var.db_host == null \|\|", {}, True),
    (r"var.db_host == null \|\|", {"db_host": HOST}, False),
    (r"var.db_host == null \|\|", {"db_engine": "dsql"}, True),
    (r"var.db_host == null \|\|", {"db_engine": "dsql", "db_host": "abc.dsql.eu-central-1.on.aws"}, True),
    (r"var.db_host == null \|\|", {"db_engine": "dsql", "create_cluster": True, "db_host": "abc.dsql.eu-central-1.on.aws"}, False),
    (r"jwt_algorithm", {}, True),
    (r"jwt_algorithm", {"bearer_jwt_public_key_pem": PEM}, True),
    (r"jwt_algorithm", {"bearer_jwt_public_key_pem": PEM, "jwt_algorithm": "HS256"}, False),
    (r"jwt_algorithm", {"bearer_jwt_hs256_secret": SECRET, "jwt_algorithm": "HS256"}, True),
    (r"jwt_algorithm", {"bearer_jwt_hs256_secret": SECRET}, False),
    (r"jwt_algorithm", {"bearer_jwt_jwks": JWKS, "jwt_algorithm": "HS256"}, True),
    (r"jwt_issuer != null &&", {}, True),
    (r"jwt_issuer != null &&", {"bearer_jwt_public_key_pem": PEM}, False),
    (r"jwt_issuer != null &&", {"bearer_jwt_jwks": JWKS, "jwt_issuer": "https://i.example.com"}, False),
    (r"jwt_issuer != null &&", {"bearer_jwt_jwks": JWKS, "jwt_issuer": "https://i.example.com", "jwt_audience": "a"}, True),
    (r"jwt_issuer != null &&", {"jwt_issuer": "https://i.example.com", "jwt_audience": "a"}, True),
    (r"jwt_issuer == null", {"jwt_issuer": "https://i.example.com"}, False),
    (r"jwt_issuer == null", {"jwt_issuer": "https://i.example.com", "jwt_audience": "a"}, True),
]


@pytest.mark.parametrize(("pattern", "variables", "expected"), PRECONDITIONS,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(PRECONDITIONS)])
def test_function_precondition(tf: Console, cfg: TfConfig, pattern: str, variables: dict, expected: bool):
    assert tf.eval(_function_condition(cfg, pattern), **variables) is expected


def _check_condition(cfg: TfConfig, name: str) -> str:
    asserts = cfg.checks[name]["assert"]
    assert len(asserts) == 1
    return unwrap(asserts[0]["condition"])


CHECKS = [
    ("rds_connect_scoped", {}, True),
    ("rds_connect_scoped", {"rds_iam_connect_any_cluster": True}, False),
    ("rds_connect_scoped", {"rds_iam_connect_any_cluster": True, "db_engine": "dsql"}, True),
    ("throttling_within_concurrency", {}, True),
    ("throttling_within_concurrency", {"api_throttling_burst_limit": 100}, True),  # unreserved by default
    ("throttling_within_concurrency", {"api_throttling_burst_limit": 100, "reserved_concurrent_executions": 10}, False),
    ("throttling_within_concurrency", {"api_throttling_burst_limit": 100, "reserved_concurrent_executions": 100}, True),
    ("throttling_within_concurrency", {"api_throttling_burst_limit": 100, "reserved_concurrent_executions": -1}, True),
    ("deploy_headroom", {}, True),
    ("deploy_headroom", {"reserved_concurrent_executions": 76}, False),
    ("deploy_headroom", {"reserved_concurrent_executions": 75}, True),
    ("deploy_headroom", {"create_cluster": True, "cluster_max_acu": 1, "reserved_concurrent_executions": 85}, False),
    ("migrations_run", {}, True),
    ("migrations_run", {"migrate_on_apply": False}, False),
    ("identity_configured", {}, False),
    ("identity_configured", {"jwt_issuer": "https://i.example.com", "jwt_audience": "a"}, True),
    ("identity_configured", {"bearer_jwt_public_key_pem": PEM}, True),
    ("concurrency_bounded", {}, False),  # unreserved by default: the stage's throttling allows 2,010 > 150
    ("concurrency_bounded", {"reserved_concurrent_executions": 10}, True),
    ("concurrency_bounded", {"reserved_concurrent_executions": -1}, False),
    ("hs256_secret_discouraged", {}, True),
    ("hs256_secret_discouraged", {"bearer_jwt_hs256_secret": SECRET, "jwt_algorithm": "HS256"}, False),
]


@pytest.mark.parametrize(("name", "variables", "expected"), CHECKS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CHECKS)])
def test_check_assertion(tf: Console, cfg: TfConfig, name: str, variables: dict, expected: bool):
    assert tf.eval(_check_condition(cfg, name), **variables) is expected


def test_dsql_precondition(tf: Console, cfg: TfConfig):
    """DbConnect is granted on one cluster: an existing one by its ARN, or a created one."""
    doc = cfg.data["aws_iam_policy_document"]["lambda"]
    (cond,) = [unwrap(p["condition"]) for p in preconditions(doc)]
    arn = "arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrstuvwxyz"
    assert tf.eval(cond) is True
    assert tf.eval(cond, db_engine="dsql") is False
    assert tf.eval(cond, db_engine="dsql", dsql_cluster_arn=arn) is True
    assert tf.eval(cond, db_engine="dsql", create_cluster=True) is True
    assert tf.eval(cond, db_engine="dsql", create_cluster=True, dsql_cluster_arn=arn) is False
