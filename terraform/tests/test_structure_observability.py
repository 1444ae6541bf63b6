"""Observability, asserted on the parsed HCL: the function's idle session timeout and metrics
settings, the alarms (only with alarms_enabled, on the metrics the function writes, notifying
the topic), their SNS topic and the dashboard. The function's side of the contract (the EMF
record) is crates/lambda/src/metrics.rs; docs/observability.md describes both.
"""

from __future__ import annotations

import json
import re

import pytest

from tfconfig import TfConfig, text_of, unwrap, validation_text, var_default

SERVICE = "${aws_lambda_function.this.function_name}"
NAMESPACE = "${var.metrics_namespace}"
# The metrics of the EMF record, and their units (crates/lambda/src/metrics.rs).
METRICS = ["Latency", "Requests", "Errors5xx", "DbRoundTrips", "DbConnectFailures", "Retries"]

# alarm resource -> what it must watch
ALARMS = {
    "latency_p99": {"namespace": NAMESPACE, "metric_name": "Latency", "dimensions": {"Service": SERVICE},
                    "extended_statistic": "p99", "threshold": "${var.alarm_latency_p99_ms}",
                    "evaluation_periods": 5, "datapoints_to_alarm": 3},
    "throttles": {"namespace": "AWS/Lambda", "metric_name": "Throttles", "dimensions": {"FunctionName": SERVICE},
                  "statistic": "Sum", "threshold": "${var.alarm_throttles_threshold}", "evaluation_periods": 1},
    "db_connect_failures": {"namespace": NAMESPACE, "metric_name": "DbConnectFailures", "dimensions": {"Service": SERVICE},
                            "statistic": "Sum", "threshold": "${var.alarm_db_connect_failures_threshold}",
                            "evaluation_periods": 2, "datapoints_to_alarm": 2},
}
ALL_ALARMS = {*ALARMS, "error_rate"}


@pytest.fixture(scope="module")
def alarms(cfg: TfConfig) -> dict[str, dict]:
    return cfg.resources_of("aws_cloudwatch_metric_alarm")


# ---------------------------------------------------------------------------
# The function's environment and the variables
# ---------------------------------------------------------------------------


def test_function_gets_idle_timeout_and_metrics_settings(cfg: TfConfig):
    public = cfg.locals["lambda_environment_public"]
    assert public.get("DB_IDLE_SESSION_TIMEOUT_SECS") == "${tostring(var.db_idle_session_timeout_seconds)}"
    assert public.get("METRICS_NAMESPACE") == "${var.metrics_namespace}"
    # The function accepts exactly "true" or "false".
    assert public.get("METRICS_TENANT_DIMENSION") == "${tostring(var.metrics_tenant_dimension)}"
    assert "METRICS_NAMESPACE" not in cfg.locals["migrate_environment"], "the migration function serves no requests"


def test_idle_session_timeout_variable(cfg: TfConfig):
    assert var_default(cfg, "db_idle_session_timeout_seconds") == 600
    assert unwrap(cfg.variables["db_idle_session_timeout_seconds"]["type"]) == "number"
    cond = validation_text(cfg, "db_idle_session_timeout_seconds")
    assert "== 0" in cond and ">= 30" in cond and "<= 86400" in cond
    desc = cfg.variables["db_idle_session_timeout_seconds"]["description"]
    assert "auto-pause" in desc and "0 disables" in desc


def test_observability_variables_are_off_by_default(cfg: TfConfig):
    expected = {"metrics_namespace": ("string", "TenantApi"), "metrics_tenant_dimension": ("bool", False),
                "alarms_enabled": ("bool", False), "dashboard_enabled": ("bool", False),
                "alarm_sns_topic_arn": ("string", None), "alarm_email": ("string", None),
                "alarm_error_rate_percent": ("number", 1), "alarm_latency_p99_ms": ("number", 1000),
                "alarm_throttles_threshold": ("number", 0), "alarm_db_connect_failures_threshold": ("number", 0)}
    for name, (vtype, default) in expected.items():
        assert cfg.variable_files[name] == "variables_observability.tf", name
        assert unwrap(cfg.variables[name]["type"]) == vtype, name
        assert var_default(cfg, name) == default, name
        if vtype != "bool":
            validation_text(cfg, name)
    desc = cfg.variables["metrics_tenant_dimension"]["description"]
    assert "metric-month" in desc and "Logs Insights" in desc, "the cost trade-off and the free alternative"


# ---------------------------------------------------------------------------
# The alarms
# ---------------------------------------------------------------------------


def test_every_alarm_exists_only_with_alarms_enabled(alarms: dict):
    assert set(alarms) == ALL_ALARMS
    for name, alarm in alarms.items():
        assert alarm.get("count") == "${var.alarms_enabled ? 1 : 0}", name
        assert alarm.get("tags") == "${local.tags}", name
        assert "${var.name}" in alarm.get("alarm_name", ""), name
        assert alarm.get("alarm_description"), name


@pytest.mark.parametrize("name", sorted(ALL_ALARMS))
def test_alarm_notifies_the_topic_on_alarm_and_ok(cfg: TfConfig, alarms: dict, name: str):
    alarm = alarms[name]
    assert alarm.get("alarm_actions") == ["${local.alarm_topic_arn}"], f"{name}: alarm_actions"
    assert alarm.get("ok_actions") == ["${local.alarm_topic_arn}"], f"{name}: ok_actions"
    assert alarm.get("actions_enabled", True) is True
    assert alarm.get("comparison_operator") == "GreaterThanThreshold"
    assert alarm.get("treat_missing_data") == "notBreaching", "no requests is not an outage"


def test_alarm_topic_is_the_given_one_or_the_created_one(cfg: TfConfig):
    assert cfg.locals["alarm_topic_arn"] == \
        "${var.alarm_sns_topic_arn != null ? var.alarm_sns_topic_arn : one(aws_sns_topic.alarms[*].arn)}"
    assert cfg.locals["create_alarm_topic"] == "${var.alarms_enabled && var.alarm_sns_topic_arn == null}"


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_alarm_watches_the_right_metric(alarms: dict, name: str):
    alarm = alarms[name]
    for key, want in ALARMS[name].items():
        assert alarm.get(key) == want, f"{name}: {key} is {alarm.get(key)!r}, want {want!r}"
    assert alarm.get("period") == 60
    assert "metric_query" not in alarm


def test_latency_alarm_ignores_too_few_samples(alarms: dict):
    assert alarms["latency_p99"].get("evaluate_low_sample_count_percentiles") == "ignore"
    assert "statistic" not in alarms["latency_p99"], "a percentile is an extended statistic"


def test_error_rate_alarm_is_errors_over_requests(alarms: dict):
    alarm = alarms["error_rate"]
    assert alarm.get("threshold") == "${var.alarm_error_rate_percent}"
    assert (alarm.get("evaluation_periods"), alarm.get("datapoints_to_alarm")) == (5, 3), "3 of 5 minutes"
    assert "metric_name" not in alarm and "namespace" not in alarm
    queries = {q["id"]: q for q in alarm.get("metric_query", [])}
    assert set(queries) == {"rate", "errors", "requests"}
    assert queries["rate"].get("expression") == "100 * errors / requests"
    assert queries["rate"].get("return_data") is True
    for qid, metric in (("errors", "Errors5xx"), ("requests", "Requests")):
        assert queries[qid].get("return_data", False) is False
        (m,) = queries[qid]["metric"]
        assert m == {"namespace": NAMESPACE, "metric_name": metric, "dimensions": {"Service": SERVICE},
                     "period": 60, "stat": "Sum"}, f"{qid}: {m}"


def test_alarm_topic_must_be_in_the_alarms_region(alarms: dict):
    conds = [text_of(p.get("condition")) for lc in alarms["error_rate"].get("lifecycle", [])
             for p in lc.get("precondition", [])]
    assert any("split(\":\", var.alarm_sns_topic_arn)[3] == local.region" in c for c in conds), conds


def test_created_topic_is_encrypted_with_a_key_cloudwatch_may_use(cfg: TfConfig):
    topic = cfg.resource("aws_sns_topic", "alarms")
    assert topic.get("count") == "${local.create_alarm_topic ? 1 : 0}"
    assert topic.get("tags") == "${local.tags}"
    # Not alias/aws/sns: CloudWatch alarms cannot use the AWS-managed key, and publishing fails.
    assert topic.get("kms_master_key_id") == "${aws_kms_key.alarms[0].arn}"
    key = cfg.resource("aws_kms_key", "alarms")
    assert key.get("count") == "${local.create_alarm_topic ? 1 : 0}"
    assert key.get("enable_key_rotation") is True and key.get("tags") == "${local.tags}"
    assert key.get("policy") == "${data.aws_iam_policy_document.alarm_topic_key[0].json}"
    doc = cfg.data["aws_iam_policy_document"]["alarm_topic_key"]
    statements = {s["sid"]: s for s in doc["statement"]}
    cw = statements["CloudWatchAlarmsPublish"]
    assert cw["principals"] == [{"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}]
    assert sorted(cw["actions"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    admin = statements["AccountAdministersTheKey"]
    assert admin["principals"][0]["identifiers"] == \
        ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    assert len(statements) == 2


def test_email_subscription_only_when_asked(cfg: TfConfig):
    sub = cfg.resource("aws_sns_topic_subscription", "alarm_email")
    assert sub.get("count") == "${local.alarm_email_count}"
    assert cfg.locals["alarm_email_count"] == "${var.alarms_enabled && var.alarm_email != null ? 1 : 0}"
    assert sub.get("topic_arn") == "${local.alarm_topic_arn}"
    assert sub.get("protocol") == "email" and sub.get("endpoint") == "${var.alarm_email}"


def test_alarm_checks_warn(cfg: TfConfig):
    unused = text_of(cfg.checks["alarm_settings_used"]["assert"][0]["condition"])
    assert "var.alarms_enabled ||" in unused
    idle = text_of(cfg.checks["idle_sessions_end"]["assert"][0]["condition"])
    assert "var.db_idle_session_timeout_seconds == 0" in idle and "var.cluster_min_acu == 0" in idle


# ---------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------


def test_dashboard_only_with_dashboard_enabled(cfg: TfConfig):
    dash = cfg.resource("aws_cloudwatch_dashboard", "this")
    assert dash.get("count") == "${var.dashboard_enabled ? 1 : 0}"
    assert dash.get("dashboard_name") == "${var.name}"
    body = text_of(dash.get("dashboard_body"))
    assert body.startswith("${jsonencode(") and "local.dashboard_widgets" in body
    assert "region = local.region" in body


def test_dashboard_shows_the_function_metrics_and_lambdas(cfg: TfConfig):
    assert cfg.locals["dashboard_service"] == SERVICE
    series = [m for w in cfg.locals["dashboard_widgets"] for m in w["metrics"]]
    found = {(m[0], m[1], m[4].get("stat")) for m in series if len(m) == 5}
    for metric, stat in [("Requests", "Sum"), ("Errors5xx", "Sum"), ("Latency", "p50"), ("Latency", "p99"),
                         ("DbRoundTrips", "Average"), ("DbConnectFailures", "Sum"), ("Retries", "Sum")]:
        assert (NAMESPACE, metric, stat) in found, f"dashboard lacks {metric} ({stat})"
    for metric, stat in [("Throttles", "Sum"), ("ConcurrentExecutions", "Maximum")]:
        assert ("AWS/Lambda", metric, stat) in found, f"dashboard lacks Lambda's {metric}"
    for m in series:
        if len(m) == 5:
            dim = "Service" if m[0] == NAMESPACE else "FunctionName"
            assert m[2:4] == [dim, "${local.dashboard_service}"], m
    assert {m[1] for m in series if len(m) == 5 and m[0] == NAMESPACE} <= set(METRICS)
    rate = [m[0] for m in series if len(m) == 1]
    assert rate and rate[0]["expression"] == "100 * errors / requests"


def test_outputs_name_the_topic_and_the_dashboard(cfg: TfConfig):
    for name in ("alarm_topic_arn", "dashboard_name", "metrics_namespace", "db_idle_session_timeout_seconds"):
        assert name in cfg.outputs and cfg.outputs[name].get("description"), name
    assert json.dumps(cfg.outputs["alarm_topic_arn"]["value"]) == \
        json.dumps("${var.alarms_enabled ? local.alarm_topic_arn : null}")
    assert re.search(r"aws_cloudwatch_dashboard\.this", text_of(cfg.outputs["dashboard_name"]["value"]))
