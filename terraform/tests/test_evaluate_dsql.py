"""Aurora DSQL (db_engine = "dsql"), evaluated with the real `terraform console` (see
test_evaluate.py): the functions' environment, the cluster (created, or existing by its ARN) and
its endpoint, the connection budget and DSQL's rate limits, and the preconditions and checks that
refuse or warn about what cannot work. Expressions that read a resource or the region (dsql.tf,
iam.tf, lambda.tf, checks.tf) are taken verbatim from the HCL, those references replaced by
literals.
"""

from __future__ import annotations

import re

import pytest

from test_evaluate import TERRAFORM, Console, TfError
from test_evaluate_database import with_literals
from tfconfig import TfConfig, preconditions, text_of, unwrap

pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

CLUSTER_ID = "abcdefghijklmnopqrstuvwxyz"
ARN = f"arn:aws:dsql:eu-central-1:123456789012:cluster/{CLUSTER_ID}"
ENDPOINT = f"{CLUSTER_ID}.dsql.eu-central-1.on.aws"
EXISTING = {"db_engine": "dsql", "dsql_cluster_arn": ARN}
CREATED = {"db_engine": "dsql", "create_cluster": True}
ROLE_ARN = "arn:aws:iam::123456789012:role/tenant-api-lambda"
CREATED_ARN = "arn:aws:dsql:eu-central-1:123456789012:cluster/zyxwvutsrqponmlkjihgfedcba"


def expr(value: str) -> str:
    """An expression as Terraform reads it: "${...}" that spans the whole value without its
    wrapper (unwrap() leaves values with nested templates alone)."""
    if value.startswith("${") and value.endswith("}"):
        depth = 0
        for i, ch in enumerate(value):
            if value.startswith("${", i):
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0 and i != len(value) - 1:
                    return value  # "${a} and ${b}": a template, not one expression
        return value[2:-1]
    return value


def template(value: str) -> str:
    """A parsed string (an error message) back as a string template: its literal quotes escaped,
    the interpolations left alone."""
    out, depth, i = [], 0, 0
    while i < len(value):
        if value.startswith("${", i):
            depth += 1
            out.append("${")
            i += 2
            continue
        ch = value[i]
        if depth and ch == "}":
            depth -= 1
        out.append('\\"' if ch == '"' and not depth else ch)
        i += 1
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------------------
# Variables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("db_engine", "postgres"),
    ("db_engine", "aurora-mysql"),
    ("db_engine", "DSQL"),
    ("db_auth", "dsql-admin"),
    ("db_user", "admin"),
    ("dsql_cluster_arn", "arn:aws:dsql:eu-central-1:123456789012:cluster/*"),
    ("dsql_cluster_arn", "arn:aws:dsql:*:123456789012:cluster/abc"),
    ("dsql_cluster_arn", ENDPOINT),
])
def test_validation_refuses(tf: Console, name: str, value):
    with pytest.raises(TfError, match=rf"(?s)Invalid value for variable.*{name}"):
        tf.eval("var." + name, **{name: value})


@pytest.mark.parametrize(("name", "value"), [
    ("db_engine", "dsql"),
    ("db_engine", "aurora-postgresql"),
    ("db_auth", None),
    ("db_auth", "dsql"),
    ("db_name", None),
    ("dsql_cluster_arn", ARN),
    ("db_host", ENDPOINT),
])
def test_validation_accepts(tf: Console, name: str, value):
    assert tf.eval("var." + name, **{name: value}) == value


# ---------------------------------------------------------------------------
# What the functions are told
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("variables", [EXISTING, CREATED], ids=["existing", "created"])
def test_api_environment(tf: Console, variables: dict):
    env = tf.eval("local.lambda_environment", **variables)
    assert {k: env[k] for k in ("APP_FUNCTION", "DB_ENGINE", "DB_AUTH", "DB_NAME", "DB_USER", "DB_POOL_MAX")} == {
        "APP_FUNCTION": "api",
        "DB_ENGINE": "dsql",
        "DB_AUTH": "dsql",  # a DbConnect token, as a custom role
        "DB_NAME": "postgres",  # DSQL's one database
        "DB_USER": "app_runtime",
        "DB_POOL_MAX": "1",
    }


@pytest.mark.parametrize("variables", [EXISTING, CREATED], ids=["existing", "created"])
def test_migration_environment(tf: Console, cfg: TfConfig, variables: dict):
    env = tf.eval("local.migrate_environment", **variables)
    assert {k: env[k] for k in ("APP_FUNCTION", "DB_ENGINE", "DB_AUTH", "DB_NAME", "DB_USER")} == {
        "APP_FUNCTION": "migrate",
        "DB_ENGINE": "dsql",
        "DB_AUTH": "dsql-admin",  # a DbConnectAdmin token
        "DB_NAME": "postgres",
        "DB_USER": "admin",
    }
    # ... plus the role the migrations map app_runtime to: the API function's.
    extra = with_literals(unwrap(cfg.locals["migrate_dsql_environment"]), {"aws_iam_role.lambda.arn": ROLE_ARN})
    assert tf.eval(extra, **variables) == {"DSQL_RUNTIME_ROLE_ARN": ROLE_ARN}
    assert tf.eval(extra) == {}, "Aurora: no role mapping"


@pytest.mark.parametrize(("variables", "created", "run", "bootstrap"), [
    (EXISTING, False, True, False),
    (CREATED, True, True, False),
    ({**CREATED, "migrate_on_apply": False}, True, False, False),
    ({"db_cluster_identifier": "app"}, False, True, False),
    ({"create_cluster": True}, False, True, True),  # Aurora: the Aurora cluster, not a DSQL one
])
def test_what_gets_created_and_run(tf: Console, variables: dict, created: bool, run: bool, bootstrap: bool):
    assert tf.eval("local.create_dsql_cluster", **variables) is created
    assert tf.eval("local.run_migrations", **variables) is run
    assert tf.eval("local.bootstrap_database", **variables) is bootstrap
    dsql = variables.get("db_engine") == "dsql"
    assert tf.eval("local.create_cluster", **variables) is (not dsql and bool(variables.get("create_cluster")))
    assert tf.eval("local.lookup_cluster", **variables) is (not dsql and not variables.get("create_cluster"))


# ---------------------------------------------------------------------------
# The cluster and its endpoint
# ---------------------------------------------------------------------------

def _dsql_local(cfg: TfConfig, name: str, region: str = "eu-central-1") -> str:
    return with_literals(expr(cfg.locals[name]), {
        "aws_dsql_cluster.this[0].arn": CREATED_ARN,
        "aws_dsql_cluster.this[0].identifier": CREATED_ARN.rsplit("/", 1)[1],
        "local.region": region,
    })


def _endpoint(cfg: TfConfig, tf: Console, region: str = "eu-central-1", **variables):
    expr = _dsql_local(cfg, "dsql_endpoint", region)
    expr = expr.replace("local.dsql_cluster_id", f"({_dsql_local(cfg, 'dsql_cluster_id', region)})")
    return tf.eval(expr, **variables)


def test_existing_cluster_named_by_its_arn(tf: Console, cfg: TfConfig):
    assert tf.eval("local.dsql_arn_cluster_id", **EXISTING) == CLUSTER_ID
    assert tf.eval("local.dsql_arn_region", **EXISTING) == "eu-central-1"
    assert tf.eval(_dsql_local(cfg, "dsql_cluster_arn"), **EXISTING) == ARN
    assert _endpoint(cfg, tf, **EXISTING) == ENDPOINT


def test_created_cluster_named_by_the_resource(tf: Console, cfg: TfConfig):
    assert tf.eval(_dsql_local(cfg, "dsql_cluster_arn"), **CREATED) == CREATED_ARN
    assert _endpoint(cfg, tf, region="us-east-1", **CREATED) == "zyxwvutsrqponmlkjihgfedcba.dsql.us-east-1.on.aws"


def test_db_host_wins_for_an_existing_cluster(tf: Console, cfg: TfConfig):
    assert _endpoint(cfg, tf, **EXISTING, db_host="db.internal.example.com") == "db.internal.example.com"


def test_no_cluster_no_endpoint(tf: Console, cfg: TfConfig):
    """Nothing names a cluster: null, and the preconditions say what is missing (no template error)."""
    assert _endpoint(cfg, tf, db_engine="dsql") is None


# ---------------------------------------------------------------------------
# Connection math: DSQL's limits, not Aurora's
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("variables", "expected"), [
    (EXISTING, 9980),
    (CREATED, 9980),
    ({**CREATED, "cluster_max_acu": 1}, 9980),  # Aurora's ACU math does not apply
    ({**EXISTING, "db_max_connections": 20000}, 20000),  # a raised quota
    ({**EXISTING, "db_max_connections": 400}, 400),  # a shared cluster
])
def test_connection_budget(tf: Console, variables: dict, expected: int):
    assert tf.eval("local.db_connection_budget", **variables) == expected


def _function_condition(cfg: TfConfig, pattern: str) -> dict:
    fn = cfg.resource("aws_lambda_function", "this")
    found = [p for p in preconditions(fn) if re.search(pattern, text_of(p["condition"]))]
    assert len(found) == 1, f"expected one precondition matching {pattern!r}, found {found}"
    return found[0]


@pytest.mark.parametrize(("variables", "expected"), [
    ({**EXISTING, "reserved_concurrent_executions": 9980}, True),
    ({**EXISTING, "reserved_concurrent_executions": 9981}, False),
    ({**CREATED, "reserved_concurrent_executions": 2000}, True),  # far above an Aurora cluster's 150
    ({**CREATED, "reserved_concurrent_executions": 401, "db_max_connections": 400}, False),
])
def test_reserved_concurrency_within_dsql_budget(tf: Console, cfg: TfConfig, variables: dict, expected: bool):
    pre = _function_condition(cfg, r"<= local\.db_connection_budget")
    assert tf.eval(unwrap(pre["condition"]), **variables) is expected
    if not expected:
        msg = tf.eval(template(pre["error_message"]), **variables)
        assert ("DSQL's 10,000" in msg or "db_max_connections" in msg) and "cluster_max_acu" not in msg, msg


def _check(cfg: TfConfig, name: str) -> dict:
    (a,) = cfg.checks[name]["assert"]
    return a


@pytest.mark.parametrize(("name", "variables", "expected"), [
    ("dsql_connection_rate", EXISTING, True),
    ("dsql_connection_rate", {**EXISTING, "reserved_concurrent_executions": 1000}, True),
    ("dsql_connection_rate", {**EXISTING, "reserved_concurrent_executions": 1001}, False),
    ("dsql_connection_rate", {**CREATED, "reserved_concurrent_executions": -1}, True),  # concurrency_bounded warns
    ("dsql_connection_rate", {"db_cluster_identifier": "app", "reserved_concurrent_executions": 5000}, True),
    ("dsql_network", EXISTING, True),
    ("dsql_network", {**EXISTING, "subnet_ids": ["subnet-0123456789abcdef0"],
                      "security_group_ids": ["sg-0123456789abcdef0"]}, False),
    ("dsql_network", {"db_cluster_identifier": "app", "subnet_ids": ["subnet-0123456789abcdef0"]}, True),
    ("deploy_headroom", {**EXISTING, "reserved_concurrent_executions": 4990}, True),
    ("deploy_headroom", {**EXISTING, "reserved_concurrent_executions": 4991}, False),
    ("migrations_run", {**CREATED, "migrate_on_apply": False}, False),
    ("db_auth_deprecated", EXISTING, True),
    ("db_auth_deprecated", {**EXISTING, "db_auth": "dsql"}, False),
    ("rds_connect_scoped", {**EXISTING, "rds_iam_connect_any_cluster": True}, True),
])
def test_checks(tf: Console, cfg: TfConfig, name: str, variables: dict, expected: bool):
    assert tf.eval(unwrap(_check(cfg, name)["condition"]), **variables) is expected


def test_rate_warning_says_how_long(tf: Console, cfg: TfConfig):
    msg = tf.eval(template(_check(cfg, "dsql_connection_rate")["error_message"]),
                  **EXISTING, reserved_concurrent_executions=3000)
    assert "burst of 1000" in msg and "100 a second" in msg and "for up to 20 s" in msg, msg


# ---------------------------------------------------------------------------
# Preconditions: what cannot work is refused at plan
# ---------------------------------------------------------------------------

OTHER_ARN = "arn:aws:dsql:eu-central-1:123456789012:cluster/otherclusteridentifier0000"


@pytest.mark.parametrize(("pattern", "variables", "expected"), [
    # The endpoint and the ARN name one cluster.
    (r"dsql_host_cluster_id == local", EXISTING, True),
    (r"dsql_host_cluster_id == local", {**EXISTING, "db_host": ENDPOINT}, True),
    (r"dsql_host_cluster_id == local", {**EXISTING, "dsql_cluster_arn": OTHER_ARN, "db_host": ENDPOINT}, False),
    (r"dsql_host_cluster_id == local", {**EXISTING, "db_host": f"{CLUSTER_ID}.dsql.us-east-1.on.aws"}, False),
    (r"dsql_host_cluster_id == local", {**EXISTING, "db_host": "db.internal.example.com"}, True),
    # One database, the role the DSQL migrations create, no Data API set-up.
    (r"var.db_user == \"app_runtime\"", EXISTING, True),
    (r"var.db_user == \"app_runtime\"", CREATED, True),
    (r"var.db_user == \"app_runtime\"", {**EXISTING, "db_name": "app"}, False),
    (r"var.db_user == \"app_runtime\"", {**EXISTING, "db_user": "svc"}, False),
    (r"var.db_user == \"app_runtime\"", {**EXISTING, "bootstrap_database": True}, False),
    (r"var.db_user == \"app_runtime\"", {"db_cluster_identifier": "app", "db_name": "tenants", "db_user": "svc"}, True),
    # db_auth may stay only if it agrees with db_engine.
    (r"var.db_auth == local.db_auth", EXISTING, True),
    (r"var.db_auth == local.db_auth", {**EXISTING, "db_auth": "dsql"}, True),
    (r"var.db_auth == local.db_auth", {**EXISTING, "db_auth": "iam"}, False),
    (r"var.db_auth == local.db_auth", {"db_cluster_identifier": "app", "db_auth": "dsql"}, False),
    (r"var.db_auth == local.db_auth", {"db_cluster_identifier": "app", "db_auth": "iam"}, True),
    # Aurora's "existing or created" does not apply to DSQL.
    (r"db_cluster_identifier != null", CREATED, True),
    # Aurora's subnet rules: a created DSQL cluster needs no subnets.
    (r"subnet_ids", CREATED, True),
])
def test_function_precondition(tf: Console, cfg: TfConfig, pattern: str, variables: dict, expected: bool):
    assert tf.eval(unwrap(_function_condition(cfg, pattern)["condition"]), **variables) is expected


def test_old_db_auth_configuration_gets_a_way_out(tf: Console, cfg: TfConfig):
    """A configuration written for db_auth = "dsql" fails with the variable to set instead."""
    pre = _function_condition(cfg, r"var.db_auth == local.db_auth")
    msg = tf.eval(template(pre["error_message"]), db_auth="dsql", db_host=ENDPOINT, dsql_cluster_arn=ARN)
    assert 'set db_engine = "dsql"' in msg and "remove db_auth" in msg, msg
