"""Evaluate the Idempotency-Key settings with the real `terraform console` (see test_evaluate.py):
the validations of idempotency_ttl_seconds and idempotency_cleanup_schedule, IDEMPOTENCY_TTL_SECS
in the function's environment (crates/lambda reads 60 to 604800, a whole number), and the
cleanup target's `input`, taken verbatim from idempotency.tf, which must render to exactly the
event the function answers as a cleanup.
"""

from __future__ import annotations

import json

import pytest

from test_evaluate import TERRAFORM, Console, TfError
from tfconfig import TfConfig

pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")




REFUSED = [
    ("idempotency_ttl_seconds", 59),
    ("idempotency_ttl_seconds", 0),
    ("idempotency_ttl_seconds", -86400),
    ("idempotency_ttl_seconds", 604801),
    ("idempotency_ttl_seconds", 86400.5),
    ("idempotency_cleanup_schedule", ""),
    ("idempotency_cleanup_schedule", "1 hour"),
    ("idempotency_cleanup_schedule", "hourly"),
    ("idempotency_cleanup_schedule", "0 * * * *"),
    ("idempotency_cleanup_schedule", "rate(1 hour"),
    ("idempotency_cleanup_schedule", "rate()"),
    ("idempotency_cleanup_schedule", " rate(1 hour)"),
    ("idempotency_cleanup_schedule", "Rate(1 hour)"),
    ("idempotency_cleanup_schedule", "at(2026-12-01T03:00:00)"),
]

ACCEPTED = [
    ("idempotency_ttl_seconds", 60),
    ("idempotency_ttl_seconds", 3600),
    ("idempotency_ttl_seconds", 604800),
    ("idempotency_cleanup_schedule", "rate(1 hour)"),
    ("idempotency_cleanup_schedule", "rate(15 minutes)"),
    ("idempotency_cleanup_schedule", "rate(1 day)"),
    ("idempotency_cleanup_schedule", "cron(15 3 * * ? *)"),
]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=[f"{n}={v!r:.40}" for n, v in REFUSED])
def test_validation_refuses(tf: Console, name: str, value):
    with pytest.raises(TfError, match=rf"(?s)Invalid value for variable.*{name}"):
        tf.eval("var." + name, **{name: value})


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=[f"{n}={v!r:.40}" for n, v in ACCEPTED])
def test_validation_accepts(tf: Console, name: str, value):
    assert tf.eval("var." + name, **{name: value}) == value


def test_defaults(tf: Console):
    assert tf.eval("var.idempotency_ttl_seconds") == 86400
    assert tf.eval("var.idempotency_cleanup_schedule") == "rate(1 day)"
    # nullable = false: an explicit null is the default, never a missing setting.
    assert tf.eval("var.idempotency_ttl_seconds", idempotency_ttl_seconds=None) == 86400
    assert tf.eval("var.idempotency_cleanup_schedule", idempotency_cleanup_schedule=None) == "rate(1 day)"


@pytest.mark.parametrize(("value", "expected"), [(None, "86400"), (60, "60"), (604800, "604800"), (3600, "3600")])
def test_environment_carries_the_ttl_as_whole_seconds(tf: Console, value, expected: str):
    variables = {} if value is None else {"idempotency_ttl_seconds": value}
    assert tf.eval("local.lambda_environment", **variables)["IDEMPOTENCY_TTL_SECS"] == expected
    assert "IDEMPOTENCY_TTL_SECS" not in tf.eval("local.migrate_environment", **variables)


def test_cleanup_input_renders_to_exactly_the_cleanup_event(tf: Console, cfg: TfConfig):
    target = cfg.resource("aws_cloudwatch_event_target", "idempotency_cleanup")
    expr = target["input"]
    inner = expr[2:-1] if expr.startswith("${") and expr.endswith("}") else json.dumps(expr)
    rendered = tf.eval(inner)
    assert isinstance(rendered, str), rendered
    assert json.loads(rendered) == {"action": "cleanup"}
    assert rendered == '{"action":"cleanup"}'


# Silo tenants (variables_placement.tf): the validations, and the API role's grant on other
# clusters, evaluated.
PLACEMENT_REFUSED = [
    ("placement_max_connections", 0),
    ("placement_max_connections", 17),
    ("placement_max_connections", 1.5),
    ("dedicated_database_users", [{"cluster_resource_id": "cluster-*"}]),
    ("dedicated_database_users", [{"cluster_resource_id": "*"}]),
    ("dedicated_database_users", [{"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY"}]),
    ("dedicated_database_users", [{"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "user": "*"}]),
    ("dedicated_database_users", [{"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "user": "App"}]),
    ("dedicated_database_users", [{"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"}] * 2),
]


@pytest.mark.parametrize(("name", "value"), PLACEMENT_REFUSED, ids=[f"{n}={v!r:.50}" for n, v in PLACEMENT_REFUSED])
def test_placement_validation_refuses(tf: Console, name: str, value):
    with pytest.raises(TfError, match=rf"(?s)Invalid value for variable.*{name}"):
        tf.eval("var." + name, **{name: value})


def test_placement_settings_reach_the_function(tf: Console):
    env = tf.eval("local.lambda_environment", placement_max_connections=5)
    assert env["DB_PLACEMENT_MAX_CONNECTIONS"] == "5"
    users = [{"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
             {"cluster_resource_id": "cluster-0123456789ABCDEFGHIJKLMNOP", "user": "silo_runtime"}]
    assert tf.eval("var.dedicated_database_users", dedicated_database_users=users) == [
        {"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "user": "app_runtime"},
        {"cluster_resource_id": "cluster-0123456789ABCDEFGHIJKLMNOP", "user": "silo_runtime"},
    ]
