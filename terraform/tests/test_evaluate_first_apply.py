"""The first apply on a new account, destroy and a second apply, a second Region (issue 20,
points 3 to 10), evaluated with the real `terraform console` (see test_evaluate.py): the
validations, and the conditions taken verbatim from the HCL with their references to resources,
data sources and `self` replaced by literals. The destroy guard's command runs in bash.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from test_evaluate import TERRAFORM, Console, TfError
from test_evaluate_database import with_literals
from test_evaluate_dsql import expr, template
from test_structure_first_apply import LONGEST_REGION, max_name_length
from tfconfig import TfConfig, preconditions, text_of, tf_dir, unwrap

pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

SG = "sg-0123456789abcdef0"
DEDICATED = [{"cluster_resource_id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "user": "app_runtime"}]


# ---------------------------------------------------------------------------
# Point 3: the defaults plan on a new account (no reservation)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(None, -1), (-1, -1), (0, 0), (20, 20)])
def test_reserved_concurrency_is_unreserved_unless_set(tf: Console, value, expected):
    """null (the default) and -1 leave the function unreserved: Lambda's -1."""
    assert tf.eval("var.reserved_concurrent_executions", reserved_concurrent_executions=value) == value
    assert tf.eval("local.reserved_concurrency", reserved_concurrent_executions=value) == expected
    assert tf.eval("local.reserved_concurrency") == -1, "unreserved by default"


@pytest.mark.parametrize("value", [-2, 2.5])
def test_reserved_concurrency_validation_refuses(tf: Console, value):
    with pytest.raises(TfError, match=r"(?s)Invalid value for variable.*reserved_concurrent_executions"):
        tf.eval("var.reserved_concurrent_executions", reserved_concurrent_executions=value)


def _check(cfg: TfConfig, name: str) -> dict:
    (a,) = cfg.checks[name]["assert"]
    return a


@pytest.mark.parametrize(("name", "variables", "expected"), [
    # Unreserved: the stage's throttling bounds the instances (burst + rate x timeout).
    ("concurrency_bounded", {}, False),  # 10 + 50 x 40 = 2,010 > 150
    ("concurrency_bounded", {"api_throttling_rate_limit": 3}, True),  # 10 + 3 x 40 = 130
    ("concurrency_bounded", {"api_throttling_rate_limit": 4}, False),  # 170
    ("concurrency_bounded", {"reserved_concurrent_executions": 50}, True),
    ("concurrency_bounded", {"reserved_concurrent_executions": -1}, False),
    # The other checks hold at the defaults (unreserved), and keep working when reserved.
    ("throttling_within_concurrency", {}, True),
    ("throttling_within_concurrency", {"reserved_concurrent_executions": 5}, False),
    ("deploy_headroom", {}, True),
    ("deploy_headroom", {"reserved_concurrent_executions": 76}, False),
    ("function_enabled", {}, True),
    ("function_enabled", {"reserved_concurrent_executions": 0}, False),
    ("dsql_connection_rate", {"db_engine": "dsql", "create_cluster": True}, True),
])
def test_checks_at_the_defaults_and_when_reserved(tf: Console, cfg: TfConfig, name: str, variables: dict, expected: bool):
    assert tf.eval(unwrap(_check(cfg, name)["condition"]), **variables) is expected


def test_unreserved_warning_gives_the_arithmetic(tf: Console, cfg: TfConfig):
    msg = tf.eval(template(_check(cfg, "concurrency_bounded")["error_message"]))
    assert "2010" in msg and "150" in msg, msg  # the bound, and the budget
    assert "api_throttling_rate_limit" in msg and "3" in msg, msg  # the rate that would fit
    assert "reserved_concurrent_executions" in msg and "Service Quotas" in msg, msg


def test_budget_precondition_holds_unreserved(tf: Console, cfg: TfConfig):
    fn = cfg.resource("aws_lambda_function", "this")
    (pre,) = [p for p in preconditions(fn) if "local.db_connection_budget" in text_of(p["condition"])
              and "reserved" in text_of(p["condition"])]
    assert tf.eval(unwrap(pre["condition"])) is True
    assert tf.eval(unwrap(pre["condition"]), reserved_concurrent_executions=151) is False
    assert tf.eval(unwrap(pre["condition"]), reserved_concurrent_executions=150) is True


# ---------------------------------------------------------------------------
# Point 4: names
# ---------------------------------------------------------------------------


def test_name_validation_matches_the_longest_name_that_fits(tf: Console, cfg: TfConfig):
    longest = max_name_length(cfg)
    assert longest == 40, "40 leaves -migrate-<the longest Region name> within IAM's 64"
    assert tf.eval("var.name", name="a" * longest) == "a" * longest
    with pytest.raises(TfError, match=r"(?s)Invalid value for variable.*name"):
        tf.eval("var.name", name="a" * (longest + 1))


@pytest.mark.parametrize(("role", "name", "region", "expected"), [
    ("lambda", "a" * 40, LONGEST_REGION, True),
    ("migrate", "a" * 40, LONGEST_REGION, True),  # exactly 64
    ("migrate", "a" * 40, "xx-longer-region-name-1", False),  # a longer Region some day: refused at plan
    ("lambda", "tenant-api", "eu-central-1", True),
])
def test_role_name_length_precondition(tf: Console, cfg: TfConfig, role: str, name: str, region: str, expected: bool):
    body = cfg.resource("aws_iam_role", role)
    (pre,) = [p for p in preconditions(body) if "<= 64" in text_of(p["condition"])]
    local = re.search(r"local\.([a-z_]+_role_name)", text_of(pre["condition"])).group(1)
    # The role name as Terraform computes it, the Region a literal.
    value = tf.eval(with_literals(template(cfg.locals[local]), {"local.region": region}), name=name)
    assert value.startswith(name) and value.endswith(region), value
    cond = with_literals(unwrap(pre["condition"]), {f"local.{local}": value})
    assert tf.eval(cond) is expected


# ---------------------------------------------------------------------------
# Point 5: auto-pause and the engine version
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "ok"), [
    ("16", True), ("17", True), ("14", True), ("16.6", True), ("15.10", True),
    ("13", False), ("13.15", False), ("16.x", False), ("v16", False), ("16.", False), ("", False),
])
def test_engine_version_validation(tf: Console, value: str, ok: bool):
    if ok:
        assert tf.eval("var.cluster_engine_version", cluster_engine_version=value) == value
    else:
        with pytest.raises(TfError, match=r"(?s)Invalid value for variable.*cluster_engine_version"):
            tf.eval("var.cluster_engine_version", cluster_engine_version=value)


def test_engine_version_default_is_a_major_version(tf: Console):
    assert tf.eval("var.cluster_engine_version") == "16"


@pytest.mark.parametrize(("min_acu", "version", "expected"), [
    (0, "16.3", True), (0, "16.2", False), (0, "16.1", False), (0, "16.10", True),
    (0, "15.7", True), (0, "15.6", False),
    (0, "14.12", True), (0, "14.11", False), (0, "14.9", False),
    (0, "13.15", True), (0, "13.14", False),
    (0, "17.4", True), (0, "18.1", True),
    (0.5, "16.1", True), (0.5, "14.9", True),  # without auto-pause any version will do
])
def test_auto_pause_needs_a_supporting_version(tf: Console, cfg: TfConfig, min_acu, version: str, expected: bool):
    lookup = cfg.data["aws_rds_engine_version"]["cluster"]
    (post,) = [p for lc in lookup.get("lifecycle", []) for p in lc.get("postcondition", [])
               if "self.version_actual" in text_of(p["condition"])]
    cond = with_literals(unwrap(post["condition"]), {"self.version_actual": version})
    assert tf.eval(cond, cluster_min_acu=min_acu) is expected
    if not expected:
        msg = tf.eval(with_literals(template(post["error_message"]), {"self.version_actual": version}),
                      cluster_min_acu=min_acu)
        assert version in msg and "16.3" in msg and "cluster_min_acu" in msg, msg


# ---------------------------------------------------------------------------
# Point 9: destroy, and create again
# ---------------------------------------------------------------------------

UUID = "3f2a9c1b-0d4e-4f5a-9b8c-7d6e5f4a3b2c"


def test_final_snapshot_identifier_is_valid_and_unique(tf: Console, cfg: TfConfig):
    """1 to 255 letters, digits and hyphens, a letter first, no two hyphens in a row, no hyphen
    at the end; a different one for each created cluster."""
    snap = cfg.resource("aws_rds_cluster", "this")["final_snapshot_identifier"]
    ref = re.search(r"terraform_data\.[a-z_]+\[0\]\.id", snap).group(0)
    names = set()
    for uuid in (UUID, "00000000-1111-4222-8333-444455556666"):
        value = tf.eval(with_literals(template(snap), {ref: uuid}), name="a" * 40)
        assert re.fullmatch(r"[a-z](?!.*--)[a-z0-9-]{0,253}[a-z0-9]", value), value
        names.add(value)
    assert len(names) == 2, names
    assert tf.eval(with_literals(template(snap), {ref: UUID})) == "tenant-api-final-3f2a9c1b"


def _guard(cfg: TfConfig) -> dict:
    (guard,) = [r for r in cfg.resources_of("terraform_data").values()
                if any("when" in p.get("local-exec", {}) for p in r.get("provisioner", []))]
    (prov,) = [p["local-exec"] for p in guard["provisioner"]]
    return guard, prov


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(("protected", "rc"), [(True, 1), (False, 0)])
def test_destroy_guard_refuses_while_protected(tf: Console, cfg: TfConfig, protected: bool, rc: int):
    guard, prov = _guard(cfg)
    # self.input as the guard stores it (the cluster's identifier a literal), then the
    # provisioner's environment from it.
    fields = ", ".join(f"{k} = {expr(v)}" for k, v in guard["input"].items())
    stored = tf.eval(with_literals("{" + fields + "}", {"aws_rds_cluster.this[0].cluster_identifier": "tenant-api"}),
                     cluster_deletion_protection=protected, create_cluster=True)
    env = {k: tf.eval(with_literals(template(v), {"self.input": stored})) for k, v in prov["environment"].items()}
    # The command as Terraform reads it (python-hcl2 hands the heredoc back escaped).
    command = tf.eval('"' + prov["command"].replace("\n", "\\n") + '"')
    interpreter = prov.get("interpreter", ["/bin/sh", "-c"])
    proc = subprocess.run([*interpreter, command], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env})
    assert proc.returncode == rc, proc.stdout + proc.stderr
    if protected:
        assert "cluster_deletion_protection = false" in proc.stderr and "tenant-api" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# The new variables, and point 10: dedicated clusters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "ok"), [
    ("dedicated_database_security_group_ids", [SG], True),
    ("dedicated_database_security_group_ids", ["default"], False),
    ("dedicated_database_security_group_ids", [SG, SG], False),
    ("dedicated_database_cidr_blocks", ["10.1.0.0/16", "10.2.3.4/32"], True),
    ("dedicated_database_cidr_blocks", ["10.1.0.0"], False),
    ("dedicated_database_cidr_blocks", ["10.1.0.1/16"], False),  # not a network address
    ("dedicated_database_cidr_blocks", ["0.0.0.0/0"], False),  # the whole internet
    ("cluster_data_api", False, True),
    ("cluster_skip_final_snapshot", True, True),
])
def test_new_variables_validation(tf: Console, name: str, value, ok: bool):
    if ok:
        assert tf.eval("var." + name, **{name: value}) == value
    else:
        with pytest.raises(TfError, match=rf"(?s)Invalid value for variable.*{name}"):
            tf.eval("var." + name, **{name: value})


@pytest.mark.parametrize(("variables", "expected"), [
    ({}, True),
    ({"create_cluster": True}, True),
    ({"create_cluster": True, "dedicated_database_users": DEDICATED}, False),
    ({"create_cluster": True, "dedicated_database_users": DEDICATED, "dedicated_database_security_group_ids": [SG]}, True),
    ({"create_cluster": True, "dedicated_database_users": DEDICATED, "dedicated_database_cidr_blocks": ["10.1.0.0/16"]}, True),
    # An existing cluster: the functions' groups are yours, and so are their rules.
    ({"db_cluster_identifier": "app", "dedicated_database_users": DEDICATED}, True),
])
def test_dedicated_databases_reachable(tf: Console, cfg: TfConfig, variables: dict, expected: bool):
    assert tf.eval(unwrap(_check(cfg, "dedicated_databases_reachable")["condition"]), **variables) is expected


# ---------------------------------------------------------------------------
# The guide says how
# ---------------------------------------------------------------------------


def test_deploy_guide_covers_the_new_settings():
    guide = (tf_dir().parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    for needle in ("reserved_concurrent_executions", "cluster_data_api = false", "cluster_deletion_protection = false",
                   "cluster_skip_final_snapshot", "dedicated_database_security_group_ids", "cluster_engine_version",
                   "terraform -chdir=terraform destroy", "second Region", "functions_security_group_id",
                   "api_throttling_rate_limit"):
        assert needle in guide, f"docs/deploy.md does not mention {needle}"
