"""The first `terraform apply` on a new account, a `terraform destroy` and a second apply, and the
same deployment in a second Region (issue 20, points 3 to 10), asserted on the parsed HCL. The
conditions themselves are evaluated in test_evaluate_first_apply.py.

Each test names the AWS page its rule comes from.
"""

from __future__ import annotations

import re

from tfconfig import TfConfig, preconditions, text_of, unwrap, validation_text, var_default

# The longest AWS Region name (us-isof-south-1; eusc-de-east-1 and the commercial ones are
# shorter). IAM role names carry the Region (point 10), so they are computed with this one.
LONGEST_REGION = "us-isof-south-1"

# Every name a resource derives from var.name, with AWS's limit for it.
#   Lambda function name: 64 (https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html)
#   IAM role name: 64 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)
#   EventBridge rule name and target id: 64 (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html,
#     API_Target.html)
#   Log group name: 512 (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html)
#   Alarm name, dashboard name: 255 (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)
#   DB cluster and instance identifiers: 63, snapshot identifier: 255, DB subnet group: 255
#     (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/CHAP_Limits.html#RDS_Limits.Constraints)
#   Security group name: 255 (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html)
#   SNS topic: 256, KMS alias: 256, HTTP API and authorizer: 128, inline policy: 128,
#   Lambda permission statement id: 100
NAME_LIMITS = {
    ("aws_lambda_function", "function_name"): 64,
    ("aws_iam_role", "name"): 64,
    ("aws_iam_role_policy", "name"): 128,
    ("aws_cloudwatch_event_rule", "name"): 64,
    ("aws_cloudwatch_event_target", "target_id"): 64,
    ("aws_cloudwatch_log_group", "name"): 512,
    ("aws_cloudwatch_metric_alarm", "alarm_name"): 255,
    ("aws_cloudwatch_dashboard", "dashboard_name"): 255,
    ("aws_rds_cluster", "cluster_identifier"): 63,
    ("aws_rds_cluster", "final_snapshot_identifier"): 255,
    ("aws_rds_cluster_instance", "identifier"): 63,
    ("aws_db_subnet_group", "name"): 255,
    ("aws_security_group", "name"): 255,
    ("aws_sns_topic", "name"): 256,
    ("aws_kms_alias", "name"): 256,
    ("aws_apigatewayv2_api", "name"): 128,
    ("aws_apigatewayv2_authorizer", "name"): 128,
    ("aws_lambda_permission", "statement_id"): 100,
}
NAME_ATTRS = {attr for _, attr in NAME_LIMITS} | {"name_prefix", "identifier_prefix"}


def max_name_length(cfg: TfConfig) -> int:
    """The longest `name` the variable's validation accepts (its regex, as Python reads it)."""
    cond = validation_text(cfg, "name")
    m = re.search(r'regex\("([^"]+)",\s*var\.name\)', cond)
    assert m, f"the name validation has no regex: {cond}"
    pattern = m.group(1).replace("\\\\", "\\")
    accepted = [n for n in range(1, 200) if re.fullmatch(pattern, "a" * n)]
    assert accepted and accepted == list(range(1, accepted[-1] + 1)), accepted
    return accepted[-1]


def render(cfg: TfConfig, value: str, name: str, region: str) -> str | None:
    """A generated name for `name` in `region`, or None for a reference to another resource's
    name (checked where that name is made). Fails on anything it cannot render."""
    for _ in range(5):  # inline "${local.x}" where the local is itself a string template
        value = re.sub(r"\$\{local\.([a-z_]+)\}",
                       lambda m: cfg.locals[m.group(1)] if isinstance(cfg.locals.get(m.group(1)), str)
                       and m.group(1) != "region" else m.group(0), value)
    if re.fullmatch(r"\$\{(aws_[a-z0-9_]+|data\.[a-z0-9_.]+)\.[a-z0-9_\[\]*]+\.[a-z_]+\}", value):
        return None
    out = value.replace("${var.name}", name)
    out = re.sub(r"\$\{(local\.region|data\.aws_region\.current\.region)\}", region, out)
    # A unique suffix cut from an id: as long as it is cut.
    out = re.sub(r"\$\{substr\([^,]+,\s*0,\s*(\d+)\)\}", lambda m: "0" * int(m.group(1)), out)
    assert "${" not in out and "local." not in out, f"cannot compute the name {value!r}"
    return out


def generated_names(cfg: TfConfig, name: str, region: str) -> list[tuple[str, str, str, int]]:
    """(resource, attribute, the name, its limit) for every name a resource sets."""
    out = []
    for rtype, named in cfg.resources.items():
        for rname, body in named.items():
            for attr in sorted(NAME_ATTRS & set(body)):
                value = body[attr]
                if not isinstance(value, str) or "${" not in value:
                    continue  # a constant (the stage's "$default", an inline policy's name)
                rendered = render(cfg, value, name, region)
                if rendered is None:
                    continue
                key = (rtype, attr)
                assert key in NAME_LIMITS, f"{rtype}.{rname}.{attr}: add AWS's limit for it to NAME_LIMITS"
                out.append((f"{rtype}.{rname}", attr, rendered, NAME_LIMITS[key]))
    return out


# ---------------------------------------------------------------------------
# Point 3: reserved concurrency is opt-in (a new account cannot reserve any)
# ---------------------------------------------------------------------------


def test_reserved_concurrency_is_opt_in(cfg: TfConfig, fn: dict):
    """A new account's concurrency quota is 10, and Lambda keeps the account's unreserved
    concurrency at its minimum: reserving any (the old default, 10) fails the first apply
    ("decreases account's UnreservedConcurrentExecution below its minimum value of [10]").
    https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html ("New AWS accounts
    have reduced concurrency and memory quotas"),
    https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionConcurrency.html"""
    assert var_default(cfg, "reserved_concurrent_executions") is None, "unreserved by default"
    assert cfg.variables["reserved_concurrent_executions"].get("nullable", True) is True
    assert unwrap(fn.get("reserved_concurrent_executions")) == "local.reserved_concurrency"
    assert unwrap(cfg.locals["reserved_concurrency"]) == \
        "var.reserved_concurrent_executions == null ? -1 : var.reserved_concurrent_executions"
    # Still available when set, and still bounded by the connection budget.
    assert any("local.reserved_concurrency <= local.db_connection_budget" in text_of(p["condition"])
               for p in preconditions(fn))
    # Without it, the stage's throttling bounds the instances: plan warns when that bound
    # exceeds the connection budget.
    bounded = text_of(cfg.checks["concurrency_bounded"]["assert"][0]["condition"])
    assert "local.unreserved_peak_concurrency <= local.db_connection_budget" in bounded, bounded
    peak = text_of(cfg.locals["unreserved_peak_concurrency"])
    assert "var.api_throttling_burst_limit" in peak and "var.api_throttling_rate_limit" in peak
    assert "var.timeout" in peak, "a request holds its instance up to the function's timeout"


# ---------------------------------------------------------------------------
# Point 4: every generated name fits, at the longest name the variable accepts
# ---------------------------------------------------------------------------


def test_every_generated_name_fits_at_the_longest_name(cfg: TfConfig):
    """EventBridge rule names take 64 characters: `<name>-idempotency-cleanup` did not fit for
    names over 44, which the variable allowed (48). Every name computed at the longest accepted
    `name`, in the longest Region name."""
    longest = "a" * max_name_length(cfg)
    names = generated_names(cfg, longest, LONGEST_REGION)
    assert len(names) >= 15, names
    too_long = [(r, a, n, len(n), limit) for r, a, n, limit in names if len(n) > limit]
    assert not too_long, f"names over AWS's limits at name = {len(longest)} characters: {too_long}"
    # The cleanup rule is among them (the name that did not fit).
    assert any(r == "aws_cloudwatch_event_rule.idempotency_cleanup" for r, *_ in names)


def test_iam_role_names_are_checked_against_their_limit(cfg: TfConfig):
    """Region names can grow: the roles refuse a name over 64 at plan time instead of failing
    half-way through apply."""
    for name in ("lambda", "migrate"):
        role = cfg.resource("aws_iam_role", name)
        conds = [text_of(p["condition"]) for p in preconditions(role)]
        assert any(re.search(r"length\(local\.[a-z_]+_role_name\) <= 64", c) for c in conds), conds


# ---------------------------------------------------------------------------
# Point 5: auto-pause (0 ACU) only on engine versions that support it; no pinned minor
# ---------------------------------------------------------------------------


def test_engine_version_is_looked_up_not_pinned(cfg: TfConfig):
    """A pinned minor version (16.6) is refused once AWS retires it: the default is a major
    version, and the newest available minor of it is looked up (aws_rds_engine_version with
    latest = true). https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.requirements.html"""
    default = var_default(cfg, "cluster_engine_version")
    assert re.fullmatch(r"1[4-9]|[2-9][0-9]", default), f"the default must be a major version, not {default!r}"
    lookup = cfg.data["aws_rds_engine_version"]["cluster"]
    assert unwrap(lookup.get("count")) == "local.create_cluster ? 1 : 0"
    assert lookup.get("engine") == "aurora-postgresql"
    assert unwrap(lookup.get("version")) == "var.cluster_engine_version"
    assert lookup.get("latest") is True
    c = cfg.resource("aws_rds_cluster", "this")
    assert unwrap(c.get("engine_version")) == "data.aws_rds_engine_version.cluster[0].version_actual"


def test_auto_pause_needs_a_version_that_supports_it(cfg: TfConfig):
    """Aurora PostgreSQL takes a minimum of 0 ACU only from 16.3, 15.7, 14.12 and 13.15
    (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html,
    "Prerequisites and Limitations"): the looked-up version is checked at plan time."""
    assert cfg.locals["auto_pause_min_minor_version"] == {"13": 15, "14": 12, "15": 7, "16": 3}
    lookup = cfg.data["aws_rds_engine_version"]["cluster"]
    post = [text_of(p["condition"]) for lc in lookup.get("lifecycle", []) for p in lc.get("postcondition", [])]
    assert any("var.cluster_min_acu > 0" in p and "self.version_actual" in p
               and "local.auto_pause_min_minor_version" in p for p in post), post


# ---------------------------------------------------------------------------
# Points 6 and 7: the migration invocation and the roles
# ---------------------------------------------------------------------------


def test_migrations_run_again_when_the_runtime_role_is_replaced(cfg: TfConfig):
    """On DSQL the migrations map app_runtime to the API function's role (AWS IAM GRANT): a new
    role (a new ARN, or the same ARN recreated: a new unique id) must run them again."""
    triggers = cfg.resource("aws_lambda_invocation", "migrate").get("triggers", {})
    values = {unwrap(v) for v in triggers.values()}
    assert "aws_iam_role.lambda.arn" in values, triggers
    assert "aws_iam_role.lambda.unique_id" in values, triggers


def test_migrations_run_after_the_migration_role_may_log_in(cfg: TfConfig):
    """IAM is eventually consistent: the invocation waits at least for the policy that lets the
    migration function log in (and the migrator retries a refused login for a while).
    https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency"""
    deps = {unwrap(d) for d in cfg.resource("aws_lambda_invocation", "migrate").get("depends_on", [])}
    assert "aws_iam_role_policy.migrate" in deps, deps
    assert "aws_iam_role_policy_attachment.migrate_xray" in deps, deps
    assert "terraform_data.bootstrap_database" in deps, deps


# ---------------------------------------------------------------------------
# Point 8: the Data API is a variable
# ---------------------------------------------------------------------------


def test_data_api_is_a_variable(cfg: TfConfig):
    """The Data API runs SQL as the master user over HTTPS for anyone with
    rds-data:ExecuteStatement and the master secret: on only while wanted.
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html"""
    c = cfg.resource("aws_rds_cluster", "this")
    assert unwrap(c.get("enable_http_endpoint")) == "var.cluster_data_api"
    assert unwrap(cfg.variables["cluster_data_api"]["type"]) == "bool"
    assert var_default(cfg, "cluster_data_api") is True, "the first apply sets the database up through it"
    desc = cfg.variables["cluster_data_api"]["description"]
    assert "false" in desc and "first apply" in desc
    # A set-up that runs while it is off says which variable to change.
    boot = cfg.resource("terraform_data", "bootstrap_database")
    (prov,) = [p["local-exec"] for p in boot.get("provisioner", []) if "local-exec" in p]
    assert "cluster_data_api" in text_of(prov["environment"].get("BOOTSTRAP_DATA_API_FIX"))


# ---------------------------------------------------------------------------
# Point 9: destroy and create again
# ---------------------------------------------------------------------------


def test_final_snapshot_name_is_unique_per_cluster(cfg: TfConfig):
    """A fixed `<name>-final` made the second create/destroy cycle fail: the snapshot of the
    first one exists. Each created cluster gets its own suffix (terraform_data's id, a UUID made
    once per cluster). https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html"""
    c = cfg.resource("aws_rds_cluster", "this")
    snap = text_of(c.get("final_snapshot_identifier"))
    m = re.search(r"terraform_data\.([a-z_]+)\[0\]\.id", snap)
    assert m, f"final_snapshot_identifier must carry a per-cluster suffix, not {snap!r}"
    gen = cfg.resource("terraform_data", m.group(1))
    assert unwrap(gen.get("count")) == "local.create_cluster ? 1 : 0"
    assert "var.name" in text_of(gen.get("triggers_replace")), "a new cluster name, a new suffix"
    assert unwrap(c.get("skip_final_snapshot")) == "var.cluster_skip_final_snapshot"
    assert var_default(cfg, "cluster_skip_final_snapshot") is False, "a final snapshot by default"


def test_destroy_stops_before_the_instance_while_the_cluster_is_protected(cfg: TfConfig):
    """Deletion protection lets the instances go and refuses the cluster
    (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_DeleteCluster.html#USER_DeletionProtection):
    a guard that depends on the writer is destroyed before it, and refuses while protected."""
    guards = {n: r for n, r in cfg.resources_of("terraform_data").items()
              if any(p.get("local-exec", {}).get("when") == "${destroy}" or p.get("local-exec", {}).get("when") == "destroy"
                     for p in r.get("provisioner", []))}
    assert len(guards) == 1, f"need one terraform_data with a destroy-time provisioner, found {sorted(guards)}"
    (name, guard), = guards.items()
    assert unwrap(guard.get("count")) == "local.create_cluster ? 1 : 0"
    deps = {unwrap(d) for d in guard.get("depends_on", [])}
    assert "aws_rds_cluster_instance.writer" in deps, deps
    assert "var.cluster_deletion_protection" in text_of(guard.get("input"))
    (prov,) = [p["local-exec"] for p in guard["provisioner"]]
    assert "self.input" in text_of(prov.get("environment")), "a destroy provisioner reads only self"


# ---------------------------------------------------------------------------
# Point 10: dedicated clusters reachable; a second Region
# ---------------------------------------------------------------------------


def test_functions_may_reach_dedicated_clusters(cfg: TfConfig):
    """A created cluster's functions' security group lets them out to that cluster only: silo
    tenants in another cluster (dedicated_database_users) need egress to it too.
    https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html"""
    rules = cfg.resources_of("aws_vpc_security_group_egress_rule")
    by_sg = [r for r in rules.values() if unwrap(r.get("referenced_security_group_id")) == "each.value"]
    by_cidr = [r for r in rules.values() if unwrap(r.get("cidr_ipv4")) == "each.value"]
    assert len(by_sg) == 1 and len(by_cidr) == 1, sorted(rules)
    for rule, var in ((by_sg[0], "dedicated_database_security_group_ids"), (by_cidr[0], "dedicated_database_cidr_blocks")):
        assert f"var.{var}" in text_of(rule.get("for_each")) and "local.create_cluster" in text_of(rule.get("for_each"))
        assert rule["security_group_id"] == "${aws_security_group.functions[0].id}"
        assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (5432, 5432, "tcp")
        assert var_default(cfg, var) == []
    assert "sg-" in validation_text(cfg, "dedicated_database_security_group_ids")
    assert "cidrhost" in validation_text(cfg, "dedicated_database_cidr_blocks")
    check = text_of(cfg.checks["dedicated_databases_reachable"]["assert"][0]["condition"])
    assert "var.dedicated_database_users" in check and "var.dedicated_database_security_group_ids" in check
    assert "functions_security_group_id" in cfg.outputs, "the other cluster admits this group"


def test_iam_role_names_carry_the_region(cfg: TfConfig):
    """IAM role names are unique in the account, across Regions: the same `name` deployed in a
    second Region failed with EntityAlreadyExists.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"""
    for rname in ("lambda", "migrate"):
        role = cfg.resource("aws_iam_role", rname)
        a = render(cfg, role["name"], "tenant-api", "eu-central-1")
        b = render(cfg, role["name"], "tenant-api", "us-east-1")
        assert a and b and a != b, f"aws_iam_role.{rname}: {a!r} in both Regions"
        assert a.startswith("tenant-api-"), a
