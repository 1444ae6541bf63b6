"""Evaluate the database-side expressions with the real `terraform console` (see test_evaluate.py).

Expressions that read the cluster or the region (database.tf, lambda.tf) are taken verbatim
from the HCL, with those references replaced by literals, so that the region check and the
rds-db:connect ARN are evaluated as Terraform evaluates them.
"""

from __future__ import annotations

import json

import pytest

from test_evaluate import TERRAFORM, Console
from tfconfig import TfConfig, preconditions, text_of, unwrap

pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

ARN = "arn:aws:rds:eu-central-1:123456789012:cluster:my-aurora-cluster"




def with_literals(expr: str, values: dict[str, object]) -> str:
    """expr with each reference in `values` replaced by a literal (longest names first)."""
    for ref in sorted(values, key=len, reverse=True):
        expr = expr.replace(ref, json.dumps(values[ref]))
    return expr


# ---------------------------------------------------------------------------
# CORS: the preflight route and the function's CORS_ALLOW_ORIGINS
# ---------------------------------------------------------------------------

JWT = {"jwt_issuer": "https://issuer.example.com", "jwt_audience": "client-1"}
ORIGINS = {"cors_allow_origins": ["https://app.example.com", "https://admin.example.com"]}
PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexample\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize(("variables", "expected"), [
    ({}, False),
    (JWT, False),
    (ORIGINS, False),
    ({**JWT, **ORIGINS}, True),
    ({**JWT, **ORIGINS, "bearer_jwt_public_key_pem": PEM}, False),  # the function checks tokens: no authorizer
], ids=["nothing", "authorizer-only", "cors-only", "authorizer-and-cors", "bearer-and-cors"])
def test_preflight_route_exists_only_with_authorizer_and_cors(tf: Console, variables: dict, expected: bool):
    assert tf.eval("local.cors_preflight_route", **variables) is expected


def test_plans_reach_the_function_as_json_only_when_set(tf: Console):
    assert "PLANS" not in tf.eval("local.lambda_environment")
    plans = {"default": "standard", "plans": {"free": {"todos": 200}}}
    env = tf.eval("local.lambda_environment", plans=plans)
    assert json.loads(env["PLANS"]) == plans


def test_the_legacy_issuer_reaches_the_function_only_when_set(tf: Console):
    assert "LEGACY_USER_ISSUER" not in tf.eval("local.lambda_environment")
    env = tf.eval("local.lambda_environment", legacy_user_issuer="jwt:https://issuer.example")
    assert env["LEGACY_USER_ISSUER"] == "jwt:https://issuer.example"


def test_cors_origins_reach_the_function_comma_separated(tf: Console):
    env = tf.eval("local.lambda_environment", **ORIGINS)
    assert env["CORS_ALLOW_ORIGINS"] == "https://app.example.com,https://admin.example.com"
    assert "CORS_ALLOW_ORIGINS" not in tf.eval("local.lambda_environment")


# ---------------------------------------------------------------------------
# The cluster: lookup, region, rds-db:connect
# ---------------------------------------------------------------------------


def test_cluster_lookup_takes_an_identifier_or_an_arn(tf: Console):
    assert tf.eval("local.cluster_lookup_id", db_cluster_identifier="my-aurora-cluster") == "my-aurora-cluster"
    assert tf.eval("local.cluster_lookup_id", db_cluster_identifier=ARN) == "my-aurora-cluster"
    assert tf.eval("local.cluster_arn_region", db_cluster_identifier=ARN) == "eu-central-1"
    assert tf.eval("local.cluster_arn_region", db_cluster_identifier="my-aurora-cluster") is None
    assert tf.eval("local.cluster_arn_region") is None


def _lookup_precondition(cfg: TfConfig, pattern: str) -> str:
    found = [unwrap(p["condition"]) for p in preconditions(cfg.data["aws_rds_cluster"]["this"])
             if pattern in text_of(p["condition"])]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(("identifier", "region", "expected"), [
    ("my-aurora-cluster", "eu-west-1", True),  # a plain identifier: the lookup searches the region itself
    (ARN, "eu-central-1", True),
    (ARN, "eu-west-1", False),
])
def test_cluster_arn_in_another_region_fails_before_the_lookup(tf: Console, cfg: TfConfig, identifier, region, expected):
    cond = with_literals(_lookup_precondition(cfg, "cluster_arn_region"), {"data.aws_region.current.region": region})
    assert tf.eval(cond, db_cluster_identifier=identifier) is expected


def _db_region_expr(cfg: TfConfig, cluster_arn: str | None) -> str:
    return with_literals(unwrap(cfg.locals["db_region"]), {"local.cluster.arn": cluster_arn or ""})


@pytest.mark.parametrize(("variables", "cluster_arn", "region", "expected"), [
    ({"db_cluster_identifier": "app"}, ARN, "eu-central-1", True),
    ({"db_cluster_identifier": "app"}, ARN, "us-east-1", False),
    ({"db_engine": "dsql", "db_host": "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"}, None, "us-east-1", True),
    ({"db_engine": "dsql", "db_host": "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"}, None, "eu-west-1", False),
    ({"db_engine": "dsql", "db_host": "db.example.com",
      "dsql_cluster_arn": "arn:aws:dsql:eu-west-1:123456789012:cluster/abc"}, None, "eu-central-1", False),
    ({"db_engine": "dsql", "dsql_cluster_arn": "arn:aws:dsql:eu-west-1:123456789012:cluster/abc"}, None, "eu-west-1", True),
    ({"db_engine": "dsql", "dsql_cluster_arn": "arn:aws:dsql:eu-west-1:123456789012:cluster/abc"}, None, "us-east-1", False),
    ({"db_engine": "dsql", "db_host": "db.example.com"}, None, "eu-central-1", True),  # nothing names a region
    ({"db_engine": "dsql", "create_cluster": True}, None, "eu-central-1", True),  # created where we deploy
], ids=["rds-same", "rds-other", "dsql-same", "dsql-other", "dsql-arn-other", "dsql-arn-same", "dsql-arn-only-other",
        "dsql-unknown", "dsql-created"])
def test_region_check(tf: Console, cfg: TfConfig, variables, cluster_arn, region, expected):
    fn = cfg.resource("aws_lambda_function", "this")
    (cond,) = [unwrap(p["condition"]) for p in preconditions(fn) if "local.db_region" in text_of(p["condition"])]
    cond = with_literals(cond, {"local.region": region})
    cond = cond.replace("local.db_region", f"({_db_region_expr(cfg, cluster_arn)})")
    assert tf.eval(cond, **variables) is expected


@pytest.mark.parametrize(("opt_in", "expected"), [(False, "cluster-ABCDEFGHIJKL"), (True, "*")])
def test_rds_connect_names_the_cluster_unless_opted_in(tf: Console, cfg: TfConfig, opt_in: bool, expected: str):
    part = with_literals(unwrap(cfg.locals["rds_cluster_part"]), {"local.cluster.resource_id": "cluster-ABCDEFGHIJKL"})
    assert tf.eval(part, rds_iam_connect_any_cluster=opt_in) == expected


# ---------------------------------------------------------------------------
# Connection budget and the migration function's settings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("variables", "expected"), [
    ({}, 150),
    ({"db_max_connections": 40}, 40),
    ({"create_cluster": True}, 189 * 2 - 20),
    ({"create_cluster": True, "cluster_max_acu": 1}, 169),
    ({"create_cluster": True, "cluster_max_acu": 16}, 1980),  # min 0: capped at 2,000
    ({"create_cluster": True, "cluster_max_acu": 32, "cluster_min_acu": 1}, 4980),  # capped at 5,000
    ({"create_cluster": True, "cluster_max_acu": 4, "db_max_connections": 100}, 100),
])
def test_connection_budget(tf: Console, variables: dict, expected: int):
    assert tf.eval("local.db_connection_budget", **variables) == expected


def test_migrate_environment(tf: Console):
    env = tf.eval("local.migrate_environment")
    assert env == {
        "APP_FUNCTION": "migrate",
        "DB_ENGINE": "postgres",
        "DB_NAME": "app",
        "DB_USER": "app_owner",
        "DB_AUTH": "iam",
        "DB_CONNECT_TIMEOUT_SECS": "30",
        "DB_STATEMENT_TIMEOUT_MS": str((300 - 30 - 45 - 5) * 1000),
        "DB_POOL_MAX": "1",
        "LOG_LEVEL": "info",
    }
    assert tf.eval("local.lambda_environment")["APP_FUNCTION"] == "api"


@pytest.mark.parametrize(("variables", "run", "bootstrap"), [
    ({"db_cluster_identifier": "app"}, True, False),
    ({"db_cluster_identifier": "app", "bootstrap_database": True}, True, True),
    ({"create_cluster": True}, True, True),
    ({"create_cluster": True, "migrate_on_apply": False}, False, True),
    # DSQL: migrations on apply too; no set-up through the Data API, ever.
    ({"db_engine": "dsql", "dsql_cluster_arn": "arn:aws:dsql:us-east-1:123456789012:cluster/x"}, True, False),
    ({"db_engine": "dsql", "create_cluster": True}, True, False),
    ({"db_engine": "dsql", "create_cluster": True, "migrate_on_apply": False}, False, False),
])
def test_when_migrations_and_set_up_run(tf: Console, variables: dict, run: bool, bootstrap: bool):
    assert tf.eval("local.run_migrations", **variables) is run
    assert tf.eval("local.bootstrap_database", **variables) is bootstrap
