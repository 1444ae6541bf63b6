"""The scheduled cleanup of Idempotency-Key records, asserted on the parsed HCL: an EventBridge
rule on var.idempotency_cleanup_schedule, a target that invokes what the API integration invokes
with exactly {"action":"cleanup"} (crates/lambda/src/invocation.rs answers any other event as an
API Gateway event), a permission for that rule only, and IDEMPOTENCY_TTL_SECS in the function's
environment. The validations are evaluated in test_evaluate_idempotency.py.
"""

from __future__ import annotations

import json
import re

import pytest

from tfconfig import TfConfig, text_of, unwrap, validation_text, var_default

CLEANUP_EVENT = {"action": "cleanup"}


def literal_json(expr: str) -> object:
    """The value of a constant `input`: a JSON string, or jsonencode() of an HCL object of string
    literals (`{ action = "cleanup" }`). Anything else (a reference, a function) fails the test."""
    m = re.fullmatch(r"\$\{\s*jsonencode\(\s*\{(.*)\}\s*\)\s*\}", expr, re.S)
    if not m:
        assert "${" not in expr, f"input must be a constant, not {expr!r}"
        return json.loads(expr)
    out: dict[str, str] = {}
    body = m.group(1).strip()
    for item in filter(None, (i.strip() for i in re.split(r"[,\n]", body))):
        kv = re.fullmatch(r'"?([A-Za-z_][A-Za-z0-9_-]*)"?\s*[=:]\s*"((?:[^"\\]|\\.)*)"', item)
        assert kv, f"input must be jsonencode() of string literals, not {expr!r} ({item!r})"
        assert kv.group(1) not in out, f"duplicate key {kv.group(1)} in {expr!r}"
        out[kv.group(1)] = json.loads(f'"{kv.group(2)}"')
    return out


# Plain helpers, not fixtures: an assertion in a fixture is an error, not a failure, and the
# mutation tests (test_mutations.py) expect a broken configuration to fail.


def invoked_by_api(cfg: TfConfig) -> str:
    """What the API integration invokes: `aws_lambda_function.this` (or an alias of it)."""
    integ = cfg.resource("aws_apigatewayv2_integration", "lambda")
    m = re.fullmatch(r"\$\{(aws_lambda_(?:function|alias)\.[A-Za-z0-9_]+)\.invoke_arn\}", integ.get("integration_uri", ""))
    assert m, f"unexpected integration_uri {integ.get('integration_uri')!r}"
    return m.group(1)


def cleanup_rule(cfg: TfConfig) -> tuple[str, dict]:
    rules = {n: r for n, r in cfg.resources_of("aws_cloudwatch_event_rule").items()
             if unwrap(r.get("schedule_expression")) == "var.idempotency_cleanup_schedule"}
    assert len(rules) == 1, "need one EventBridge rule on var.idempotency_cleanup_schedule"
    return next(iter(rules.items()))


def cleanup_target(cfg: TfConfig) -> dict:
    name, _ = cleanup_rule(cfg)
    targets = [t for t in cfg.resources_of("aws_cloudwatch_event_target").values()
               if unwrap(t.get("rule")) == f"aws_cloudwatch_event_rule.{name}.name"]
    assert len(targets) == 1, f"need one target on aws_cloudwatch_event_rule.{name}"
    return targets[0]


def test_rule_is_a_tagged_enabled_schedule(cfg: TfConfig):
    _, body = cleanup_rule(cfg)
    assert unwrap(body.get("tags")) == "local.tags", "tag the rule like the other resources"
    assert "var.name" in text_of(body.get("name")), "the rule's name must follow var.name (one per deployment)"
    assert body.get("is_enabled", True) is True and body.get("state", "ENABLED") == "ENABLED"
    assert "event_pattern" not in body, "a schedule, not an event pattern"
    assert "count" not in body and "for_each" not in body, "the cleanup always runs"


def test_schedule_variable(cfg: TfConfig):
    assert var_default(cfg, "idempotency_cleanup_schedule") == "rate(1 day)"
    assert unwrap(cfg.variables["idempotency_cleanup_schedule"]["type"]) == "string"
    assert cfg.variables["idempotency_cleanup_schedule"].get("nullable") is False
    cond = validation_text(cfg, "idempotency_cleanup_schedule")
    assert "rate" in cond and "cron" in cond, cond


def test_target_invokes_the_api_function_with_the_cleanup_event(cfg: TfConfig):
    target, invoked = cleanup_target(cfg), invoked_by_api(cfg)
    assert target.get("arn") == f"${{{invoked}.arn}}", \
        f"the schedule must invoke what the API integration invokes ({invoked}), not {target.get('arn')!r}"
    assert "input" in target, "the target needs the constant input {\"action\":\"cleanup\"}"
    assert literal_json(target["input"]) == CLEANUP_EVENT
    for other in ("input_path", "input_transformer"):
        assert other not in target, f"{other} would replace the constant input"


def test_permission_lets_only_the_rule_invoke(cfg: TfConfig):
    (name, _), invoked = cleanup_rule(cfg), invoked_by_api(cfg)
    perms = [p for p in cfg.resources_of("aws_lambda_permission").values() if p.get("principal") == "events.amazonaws.com"]
    assert len(perms) == 1, "EventBridge needs a lambda permission (principal events.amazonaws.com)"
    perm = perms[0]
    assert perm.get("action") == "lambda:InvokeFunction"
    assert perm.get("source_arn") == f"${{aws_cloudwatch_event_rule.{name}.arn}}", \
        "source_arn must be the rule's ARN, exactly: no wildcard, no other rule"
    assert perm.get("function_name") == f"${{{invoked}.function_name}}", \
        "the permission must be on the function the target invokes"
    if invoked.startswith("aws_lambda_alias."):
        assert perm.get("qualifier") == f"${{{invoked}.name}}", "an alias target needs the alias's permission"
    else:
        assert "qualifier" not in perm, "the target is the unqualified function: so must the permission be"
    assert "count" not in perm and "for_each" not in perm


def test_ttl_variable_reaches_the_api_function_only(cfg: TfConfig):
    assert var_default(cfg, "idempotency_ttl_seconds") == 86400
    assert unwrap(cfg.variables["idempotency_ttl_seconds"]["type"]) == "number"
    assert cfg.variables["idempotency_ttl_seconds"].get("nullable") is False
    cond = validation_text(cfg, "idempotency_ttl_seconds")
    assert "60" in cond and "604800" in cond, cond
    public = cfg.locals["lambda_environment_public"]
    assert text_of(public.get("IDEMPOTENCY_TTL_SECS")) == "${tostring(var.idempotency_ttl_seconds)}"
    assert "IDEMPOTENCY_TTL_SECS" not in cfg.locals["migrate_environment"], "the migration function keeps no records"


def test_literal_json_reads_only_constants():
    assert literal_json('${jsonencode({action = "cleanup"})}') == CLEANUP_EVENT
    assert literal_json('${jsonencode({ "action" = "cleanup", n = "1" })}') == {"action": "cleanup", "n": "1"}
    assert literal_json('{"action":"cleanup"}') == CLEANUP_EVENT
    for bad in ('${jsonencode({action = var.x})}', "${local.event}", '${jsonencode(local.event)}'):
        with pytest.raises(AssertionError):
            literal_json(bad)
