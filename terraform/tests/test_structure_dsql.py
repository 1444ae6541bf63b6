"""Aurora DSQL (db_engine = "dsql"), asserted on the parsed HCL: the cluster Terraform may
create (deletion protection, tags, the key), the endpoint derived from it or from an existing
cluster's ARN, what the functions are told, DSQL's connection limits in the budget and the
checks, and the preconditions that refuse what cannot work. The grants (DbConnect for the API,
DbConnectAdmin for the migrations, on this cluster's ARN only) are in test_structure_iam.py.
"""

from __future__ import annotations

import re

from tfconfig import TfConfig, preconditions, text_of, unwrap, var_default


def test_created_dsql_cluster(cfg: TfConfig):
    c = cfg.resource("aws_dsql_cluster", "this")
    assert unwrap(c.get("count")) == "local.create_dsql_cluster ? 1 : 0"
    assert unwrap(cfg.locals["create_dsql_cluster"]) == "local.use_dsql && var.create_cluster"
    # Deletion protection on unless explicitly turned off (the same switch as Aurora's).
    assert unwrap(c.get("deletion_protection_enabled")) == "var.cluster_deletion_protection"
    assert var_default(cfg, "cluster_deletion_protection") is True
    assert unwrap(c.get("kms_encryption_key")) == "var.cluster_kms_key_arn", "a customer key when one is given"
    assert "local.tags" in text_of(c.get("tags")), "tagged like everything else"
    assert c.get("force_destroy") in (None, False)
    assert "multi_region_properties" not in c, "a single-Region cluster"
    # Aurora's resources stay Aurora's.
    assert unwrap(cfg.locals["create_cluster"]) == "local.use_rds && var.create_cluster"


def test_one_cluster_is_named_everywhere(cfg: TfConfig):
    assert unwrap(cfg.locals["dsql_cluster_arn"]) == \
        "local.create_dsql_cluster ? aws_dsql_cluster.this[0].arn : var.dsql_cluster_arn"
    assert unwrap(cfg.locals["dsql_cluster_id"]) == \
        "local.create_dsql_cluster ? aws_dsql_cluster.this[0].identifier : local.dsql_arn_cluster_id"
    assert unwrap(cfg.locals["dsql_arn_cluster_id"]) == 'try(split("/", var.dsql_cluster_arn)[1], null)'


def test_endpoint_is_derived_from_the_cluster(cfg: TfConfig):
    endpoint = text_of(cfg.locals["dsql_endpoint"])
    assert endpoint.startswith("${var.db_host != null ? var.db_host :"), endpoint
    assert "${local.dsql_cluster_id}.dsql.${local.region}.on.aws" in endpoint, endpoint
    assert unwrap(cfg.locals["db_host"]) == "local.use_rds ? local.cluster.endpoint : local.dsql_endpoint"
    assert var_default(cfg, "db_host") is None and var_default(cfg, "db_port") == 5432


def test_dsql_connection_limits(cfg: TfConfig):
    """DSQL's quotas: 10,000 connections per cluster, 100 new a second, a burst of 1,000."""
    assert cfg.locals["dsql_max_connections"] == 10000
    assert cfg.locals["dsql_connection_burst"] == 1000
    assert cfg.locals["dsql_connection_rate"] == 100
    budget = text_of(cfg.locals["db_connection_budget"])
    assert "var.db_max_connections != null ? var.db_max_connections" in budget
    assert "local.use_dsql ? local.dsql_max_connections - 20" in budget, "DSQL's limit, not Aurora's ACU math"
    assert budget.index("local.use_dsql") < budget.index("local.create_cluster"), budget
    rate = text_of(cfg.checks["dsql_connection_rate"]["assert"][0]["condition"])
    assert rate == "${!local.use_dsql || local.reserved_concurrency <= local.dsql_connection_burst}", rate


def test_dsql_needs_no_vpc_and_says_so(cfg: TfConfig):
    cond = text_of(cfg.checks["dsql_network"]["assert"][0]["condition"])
    assert cond == "${!(local.use_dsql && local.vpc_attached)}", cond
    msg = text_of(cfg.checks["dsql_network"]["assert"][0]["error_message"])
    assert "NAT" in msg and "PrivateLink" in msg


def _conditions(body: dict) -> list[str]:
    return [text_of(p["condition"]) for p in preconditions(body)]


def test_preconditions_refuse_what_cannot_work(cfg: TfConfig, fn: dict):
    conds = _conditions(fn)
    # The endpoint tokens are signed for is the cluster DbConnect is granted on.
    assert any("local.dsql_host_cluster_id == local.dsql_arn_cluster_id" in c
               and "local.dsql_host_region == local.dsql_arn_region" in c for c in conds), conds
    # One database (postgres), the role the DSQL migrations create, no Data API set-up.
    assert "${!local.use_dsql || (var.db_name == null && var.db_user == \"app_runtime\" && !var.bootstrap_database)}" \
        in conds, conds
    # db_host only for an existing DSQL cluster.
    assert "${var.db_host == null || (local.use_dsql && !var.create_cluster)}" in conds, conds
    # db_auth may only agree with db_engine.
    assert "${var.db_auth == null || var.db_auth == local.db_auth}" in conds, conds
    # Exactly one DSQL cluster: an existing one by ARN, or a created one.
    doc = cfg.data["aws_iam_policy_document"]["lambda"]
    assert _conditions(doc) == ["${!local.use_dsql || ((var.dsql_cluster_arn != null) != var.create_cluster)}"]


def test_db_auth_is_deprecated_not_decisive(cfg: TfConfig):
    """db_engine decides; db_auth appears only where it is checked and warned about."""
    uses = [name for name, raw in cfg.raw.items() if re.search(r"\bvar\.db_auth\b", raw)]
    assert sorted(uses) == ["checks.tf", "lambda.tf", "variables_database.tf"], uses
    assert text_of(cfg.checks["db_auth_deprecated"]["assert"][0]["condition"]) == "${var.db_auth == null}"
