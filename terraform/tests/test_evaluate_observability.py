"""Evaluate the observability expressions with the real `terraform console` (see test_evaluate.py):
the new variables' validations, the function's environment, which resources exist for which
settings (each `count` as written in observability.tf and dashboard.tf), the topic the alarms
notify, the region precondition and the warnings. References to resources and to the region
are replaced by literals (test_evaluate_database.with_literals).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from test_evaluate import TERRAFORM, Console, TfError, _env
from test_evaluate_database import with_literals
from tfconfig import TfConfig, text_of, unwrap

pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

TOPIC = "arn:aws:sns:eu-central-1:123456789012:oncall"
CREATED = "arn:aws:sns:eu-central-1:123456789012:tenant-api-alarms"




# ---------------------------------------------------------------------------
# Validations
# ---------------------------------------------------------------------------

REFUSED = [
    ("db_idle_session_timeout_seconds", -1),
    ("db_idle_session_timeout_seconds", 1),
    ("db_idle_session_timeout_seconds", 29),
    ("db_idle_session_timeout_seconds", 86401),
    ("db_idle_session_timeout_seconds", 600.5),
    ("metrics_namespace", ""),
    ("metrics_namespace", "AWS/Lambda"),
    ("metrics_namespace", " TenantApi"),
    ("metrics_namespace", "Tenant$Api"),
    ("metrics_namespace", "x" * 256),
    ("alarm_sns_topic_arn", "oncall"),
    ("alarm_sns_topic_arn", "arn:aws:sqs:eu-central-1:123456789012:oncall"),
    ("alarm_sns_topic_arn", "arn:aws:sns:eu-central-1:123456789012:oncall:1c5f3c3a-1234"),
    ("alarm_email", "oncall"),
    ("alarm_email", "a@b"),
    ("alarm_email", "a@example.com, b@example.com"),
    ("alarm_error_rate_percent", 0),
    ("alarm_error_rate_percent", 100),
    ("alarm_latency_p99_ms", 0),
    ("alarm_latency_p99_ms", 900001),
    ("alarm_throttles_threshold", -1),
    ("alarm_throttles_threshold", 0.5),
    ("alarm_db_connect_failures_threshold", -1),
    ("alarm_db_connect_failures_threshold", 1.5),
]

ACCEPTED = [
    ("db_idle_session_timeout_seconds", 0),
    ("db_idle_session_timeout_seconds", 30),
    ("db_idle_session_timeout_seconds", 86400),
    ("metrics_namespace", "Acme/Tenant API:prod#1"),
    ("metrics_namespace", "x" * 255),
    ("alarm_sns_topic_arn", TOPIC),
    ("alarm_sns_topic_arn", "arn:aws-us-gov:sns:us-gov-west-1:123456789012:on_call-1"),
    ("alarm_email", "oncall+api@example.com"),
    ("alarm_error_rate_percent", 0.5),
    ("alarm_error_rate_percent", 25),
    ("alarm_latency_p99_ms", 250),
    ("alarm_throttles_threshold", 5),
    ("alarm_db_connect_failures_threshold", 3),
]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=[f"{n}={v!r:.40}" for n, v in REFUSED])
def test_validation_refuses(tf: Console, name: str, value):
    with pytest.raises(TfError, match=rf"(?s)Invalid value for variable.*{name}"):
        tf.eval("var." + name, **{name: value})


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=[f"{n}={v!r:.40}" for n, v in ACCEPTED])
def test_validation_accepts(tf: Console, name: str, value):
    assert tf.eval("var." + name, **{name: value}) == value


# ---------------------------------------------------------------------------
# The function's environment
# ---------------------------------------------------------------------------


def test_environment_defaults(tf: Console):
    env = tf.eval("local.lambda_environment")
    assert env["DB_IDLE_SESSION_TIMEOUT_SECS"] == "600"
    assert env["METRICS_NAMESPACE"] == "TenantApi"
    assert env["METRICS_TENANT_DIMENSION"] == "false"


def test_environment_follows_the_settings(tf: Console):
    env = tf.eval("local.lambda_environment", db_idle_session_timeout_seconds=0,
                  metrics_namespace="Acme/Api", metrics_tenant_dimension=True)
    assert env["DB_IDLE_SESSION_TIMEOUT_SECS"] == "0"
    assert env["METRICS_NAMESPACE"] == "Acme/Api"
    assert env["METRICS_TENANT_DIMENSION"] == "true"
    assert "DB_IDLE_SESSION_TIMEOUT_SECS" not in tf.eval("local.migrate_environment")


# ---------------------------------------------------------------------------
# What exists for which settings
# ---------------------------------------------------------------------------

ALARMS = ["error_rate", "latency_p99", "throttles", "db_connect_failures"]
#              settings                                                   alarms topic+key email dashboard
CASES = [
    ({},                                                                    0, 0, 0, 0),
    ({"dashboard_enabled": True},                                           0, 0, 0, 1),
    ({"alarm_email": "oncall@example.com", "alarm_sns_topic_arn": TOPIC},  0, 0, 0, 0),
    ({"alarms_enabled": True},                                              1, 1, 0, 0),
    ({"alarms_enabled": True, "alarm_email": "oncall@example.com"},        1, 1, 1, 0),
    ({"alarms_enabled": True, "alarm_sns_topic_arn": TOPIC},               1, 0, 0, 0),
    ({"alarms_enabled": True, "alarm_sns_topic_arn": TOPIC,
      "alarm_email": "oncall@example.com", "dashboard_enabled": True},     1, 0, 1, 1),
]


def _count(cfg: TfConfig, rtype: str, name: str, kind: str = "resource") -> str:
    body = (cfg.resources if kind == "resource" else cfg.data)[rtype][name]
    return unwrap(body["count"])


@pytest.mark.parametrize(("variables", "alarms", "topic", "email", "dashboard"), CASES,
                         ids=[f"case{i}" for i in range(len(CASES))])
def test_resources_exist_only_when_enabled(tf: Console, cfg: TfConfig, variables: dict,
                                           alarms: int, topic: int, email: int, dashboard: int):
    counts = {
        **{f"alarm.{a}": _count(cfg, "aws_cloudwatch_metric_alarm", a) for a in ALARMS},
        "topic": _count(cfg, "aws_sns_topic", "alarms"),
        "key": _count(cfg, "aws_kms_key", "alarms"),
        "alias": _count(cfg, "aws_kms_alias", "alarms"),
        "key_policy": _count(cfg, "aws_iam_policy_document", "alarm_topic_key", kind="data"),
        "email": _count(cfg, "aws_sns_topic_subscription", "alarm_email"),
        "dashboard": _count(cfg, "aws_cloudwatch_dashboard", "this"),
    }
    got = tf.eval("{" + ", ".join(f'"{k}" = {v}' for k, v in counts.items()) + "}", **variables)
    want = {**{f"alarm.{a}": alarms for a in ALARMS}, "topic": topic, "key": topic, "alias": topic,
            "key_policy": topic, "email": email, "dashboard": dashboard}
    assert got == want


@pytest.mark.parametrize(("variables", "created", "expected"), [
    ({"alarms_enabled": True}, [CREATED], CREATED),
    ({"alarms_enabled": True, "alarm_sns_topic_arn": TOPIC}, [], TOPIC),
    ({}, [], None),
])
def test_alarms_notify_the_given_or_the_created_topic(tf: Console, cfg: TfConfig, variables: dict,
                                                      created: list, expected):
    expr = with_literals(unwrap(cfg.locals["alarm_topic_arn"]), {"aws_sns_topic.alarms[*].arn": created})
    assert tf.eval(expr, **variables) == expected


@pytest.mark.parametrize(("topic", "region", "ok"), [
    (None, "eu-central-1", True),
    (TOPIC, "eu-central-1", True),
    (TOPIC, "us-east-1", False),
])
def test_topic_in_the_alarms_region(tf: Console, cfg: TfConfig, topic, region: str, ok: bool):
    alarm = cfg.resources["aws_cloudwatch_metric_alarm"]["error_rate"]
    (cond,) = [unwrap(p["condition"]) for lc in alarm["lifecycle"] for p in lc["precondition"]]
    assert tf.eval(with_literals(cond, {"local.region": region}), alarm_sns_topic_arn=topic) is ok


@pytest.mark.parametrize(("name", "variables", "expected"), [
    ("alarm_settings_used", {}, True),
    ("alarm_settings_used", {"alarm_email": "oncall@example.com"}, False),
    ("alarm_settings_used", {"alarm_sns_topic_arn": TOPIC}, False),
    ("alarm_settings_used", {"alarm_sns_topic_arn": TOPIC, "alarms_enabled": True}, True),
    ("idle_sessions_end", {}, True),
    ("idle_sessions_end", {"create_cluster": True}, True),
    ("idle_sessions_end", {"create_cluster": True, "db_idle_session_timeout_seconds": 0}, False),
    ("idle_sessions_end", {"create_cluster": True, "db_idle_session_timeout_seconds": 0, "cluster_min_acu": 0.5}, True),
    ("idle_sessions_end", {"db_idle_session_timeout_seconds": 0, "db_cluster_identifier": "app"}, True),
])
def test_check_assertion(tf: Console, cfg: TfConfig, name: str, variables: dict, expected: bool):
    (a,) = cfg.checks[name]["assert"]
    assert tf.eval(unwrap(a["condition"]), **variables) is expected, text_of(a["condition"])


# ---------------------------------------------------------------------------
# The dashboard's body, rendered
# ---------------------------------------------------------------------------


def _block(text: str, header: str) -> str:
    """The block whose first line matches `header` (a regex), braces balanced."""
    m = re.search(header, text, re.M)
    assert m, header
    depth, i = 0, text.index("{", m.start())
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[m.start(): i + 1]
        i += 1


@pytest.fixture(scope="module")
def dashboard(cfg: TfConfig, tmp_path_factory) -> Console:
    """variables*.tf, locals.tf and dashboard.tf's locals with the function's name and the region
    as literals, and the dashboard's body as written, as a local."""
    work = tmp_path_factory.mktemp("tf-eval-dashboard")
    for path in [*sorted(cfg.root.glob("variables*.tf")), cfg.root / "locals.tf"]:
        shutil.copy(path, work / path.name)
    lit = {"aws_lambda_function.this.function_name": "tenant-api", "local.region": "eu-central-1"}
    widgets = with_literals(_block(cfg.raw["dashboard.tf"], r"^locals \{"), lit)
    body = with_literals(unwrap(cfg.resources["aws_cloudwatch_dashboard"]["this"]["dashboard_body"]), lit)
    (work / "dashboard.tf").write_text(f"{widgets}\n\nlocals {{\n  dashboard_body = {body}\n}}\n", encoding="utf-8")
    proc = subprocess.run([TERRAFORM, "init", "-backend=false", "-input=false", "-no-color"],
                          capture_output=True, text=True, cwd=work, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Console(work)


def test_dashboard_body_renders(dashboard: Console):
    body = json.loads(dashboard.eval("local.dashboard_body", metrics_namespace="Acme/Api"))
    widgets = body["widgets"]
    assert len(widgets) == 6
    places = set()
    for w in widgets:
        assert w["type"] == "metric" and (w["width"], w["height"]) == (12, 6)
        places.add((w["x"], w["y"]))
        p = w["properties"]
        assert p["region"] == "eu-central-1" and p["period"] == 60 and p["title"]
        for m in p["metrics"]:
            if len(m) == 1:
                assert m[0]["expression"] == "100 * errors / requests"
                continue
            ns, metric, dim, value, opts = m
            assert (dim, value) == (("Service", "tenant-api") if ns == "Acme/Api" else ("FunctionName", "tenant-api"))
            assert ns in ("Acme/Api", "AWS/Lambda") and opts["stat"]
    assert len(places) == 6, "no two widgets in one place"
    stats = {(m[1], m[4]["stat"]) for w in widgets for m in w["properties"]["metrics"] if len(m) == 5}
    assert {("Latency", "p50"), ("Latency", "p99"), ("Throttles", "Sum"), ("ConcurrentExecutions", "Maximum"),
            ("Requests", "Sum"), ("Errors5xx", "Sum"), ("DbRoundTrips", "Average"), ("DbConnectFailures", "Sum"),
            ("Retries", "Sum")} <= stats
    ids = {m[4].get("id") for w in widgets for m in w["properties"]["metrics"] if len(m) == 5}
    assert {"errors", "requests"} <= ids, "the rate expression's inputs"
