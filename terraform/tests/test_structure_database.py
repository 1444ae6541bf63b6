"""The database side, asserted on the parsed HCL: the cluster looked up (IAM authentication
required), the region check, the optional cluster Terraform creates, the migration function,
its invocation from `terraform apply`, and the one-time set-up through the Data API.
"""

from __future__ import annotations

import re

from tfconfig import TfConfig, preconditions, text_of, unwrap, validation_text, var_default


def _postconditions(body: dict) -> list[dict]:
    return [p for lc in body.get("lifecycle", []) for p in lc.get("postcondition", [])]


def test_existing_cluster_is_looked_up_by_identifier(cfg: TfConfig):
    lookup = cfg.data["aws_rds_cluster"]["this"]
    assert unwrap(lookup.get("count")) == "local.lookup_cluster ? 1 : 0"
    assert unwrap(lookup.get("cluster_identifier")) == "local.cluster_lookup_id"
    assert "var.db_cluster_identifier" in text_of(cfg.locals["cluster_lookup_id"])
    assert var_default(cfg, "db_cluster_identifier") is None
    assert "db_cluster_resource_id" not in cfg.variables, "the resource ID comes from the lookup"
    cluster = text_of(cfg.locals["cluster"])
    for attr in ("endpoint", "port", "cluster_resource_id", "arn"):
        assert f"data.aws_rds_cluster.this[0].{attr}" in cluster


def test_lookup_requires_iam_authentication_and_postgresql(cfg: TfConfig):
    post = [text_of(p["condition"]) for p in _postconditions(cfg.data["aws_rds_cluster"]["this"])]
    assert "${self.iam_database_authentication_enabled == true}" in post, post
    assert any('self.engine == "aurora-postgresql"' in p for p in post)
    msgs = " ".join(text_of(p["error_message"]) for p in _postconditions(cfg.data["aws_rds_cluster"]["this"]))
    assert "--enable-iam-database-authentication" in msgs, "say how to turn it on"


def test_function_host_and_port_come_from_the_cluster(cfg: TfConfig):
    assert unwrap(cfg.locals["db_host"]) == "local.use_rds ? local.cluster.endpoint : local.dsql_endpoint"
    assert unwrap(cfg.locals["db_port"]) == "local.use_rds ? local.cluster.port : var.db_port"
    assert var_default(cfg, "db_host") is None


def test_region_check(cfg: TfConfig, fn: dict):
    """IAM tokens and rds-db ARNs are regional: the plan fails when the database is elsewhere."""
    conds = [text_of(p["condition"]) for p in preconditions(fn)]
    assert "${local.db_region == null || local.db_region == local.region}" in conds, conds
    region = text_of(cfg.locals["db_region"])
    assert 'split(":", local.cluster.arn)[3]' in region and "dsql" in region
    lookup = cfg.data["aws_rds_cluster"]["this"]
    pre = [text_of(p["condition"]) for p in preconditions(lookup)]
    assert any("local.cluster_arn_region == data.aws_region.current.region" in p for p in pre), \
        "a cluster ARN in another region must fail before the lookup"
    post = [text_of(p["condition"]) for p in _postconditions(lookup)]
    assert any('split(":", self.arn)[3] == data.aws_region.current.region' in p for p in post)


def test_name_and_user_are_lower_case_identifiers(cfg: TfConfig):
    for name in ("db_name", "db_user"):
        cond = validation_text(cfg, name)
        m = re.search(r'regex\("([^"]+)"', cond)
        pattern = m.group(1).replace("\\\\", "\\")
        assert re.fullmatch(pattern, "app_runtime") and re.fullmatch(pattern, "tenants2")
        for bad in ("App", "app$x", "my-app", "1app", "a" * 64):
            assert not re.fullmatch(pattern, bad), f"{name} accepts {bad!r}"


# ---------------------------------------------------------------------------
# The optional cluster
# ---------------------------------------------------------------------------


def test_created_cluster(cfg: TfConfig):
    c = cfg.resource("aws_rds_cluster", "this")
    assert unwrap(c.get("count")) == "local.create_cluster ? 1 : 0"
    assert var_default(cfg, "create_cluster") is False, "off by default"
    assert c.get("engine") == "aurora-postgresql" and c.get("engine_mode") == "provisioned"
    assert c.get("iam_database_authentication_enabled") is True
    assert c.get("manage_master_user_password") is True and "master_password" not in c
    assert c.get("storage_encrypted") is True
    assert unwrap(c.get("deletion_protection")) == "var.cluster_deletion_protection"
    assert var_default(cfg, "cluster_deletion_protection") is True
    assert c.get("enable_http_endpoint") == "${var.cluster_data_api}", "the Data API is the set-up's way in"
    assert c.get("skip_final_snapshot") == "${var.cluster_skip_final_snapshot}"
    assert unwrap(c.get("database_name")) == "local.db_name"
    (scaling,) = c["serverlessv2_scaling_configuration"]
    assert unwrap(scaling["min_capacity"]) == "var.cluster_min_acu" and var_default(cfg, "cluster_min_acu") == 0
    assert unwrap(scaling["max_capacity"]) == "var.cluster_max_acu"
    assert "var.cluster_seconds_until_auto_pause" in text_of(scaling.get("seconds_until_auto_pause"))
    ignored = [i for lc in c.get("lifecycle", []) for i in lc.get("ignore_changes", [])]
    assert "${engine_version}" in ignored or "engine_version" in ignored, "RDS's minor upgrades must not be reverted"
    inst = cfg.resource("aws_rds_cluster_instance", "writer")
    assert inst.get("instance_class") == "db.serverless" and inst.get("publicly_accessible") is False


def test_created_cluster_admits_only_the_functions(cfg: TfConfig, fn: dict, migrate_fn: dict):
    c = cfg.resource("aws_rds_cluster", "this")
    assert c.get("vpc_security_group_ids") == ["${aws_security_group.cluster[0].id}"]
    (rule,) = cfg.resources_of("aws_vpc_security_group_ingress_rule").values()
    assert rule["security_group_id"] == "${aws_security_group.cluster[0].id}"
    assert rule["referenced_security_group_id"] == "${aws_security_group.functions[0].id}"
    assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (5432, 5432, "tcp")
    assert "cidr_ipv4" not in rule
    assert "aws_security_group.functions[*].id" in text_of(cfg.locals["function_security_group_ids"])
    for f in (fn, migrate_fn):
        (vpc,) = [d["vpc_config"] for d in f.get("dynamic", []) if "vpc_config" in d]
        assert unwrap(vpc["content"][0]["security_group_ids"]) == "local.function_security_group_ids"
        assert unwrap(vpc["content"][0]["subnet_ids"]) == "var.subnet_ids"


def test_connection_budget_derived_from_max_acu(cfg: TfConfig):
    est = text_of(cfg.locals["cluster_max_connections"])
    assert "189 * var.cluster_max_acu" in est and "2000" in est and "5000" in est
    budget = text_of(cfg.locals["db_connection_budget"])
    assert "local.create_cluster ? local.cluster_max_connections - 20" in budget
    assert var_default(cfg, "db_max_connections") is None


# ---------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------


def test_migration_function_is_the_same_package(fn: dict, migrate_fn: dict):
    for key in ("runtime", "handler", "architectures", "filename", "source_code_hash", "memory_size"):
        assert migrate_fn.get(key) == fn.get(key), key
    assert unwrap(migrate_fn.get("timeout")) == "var.migrate_timeout"
    assert "count" not in migrate_fn, "the migration function serves both engines"


def test_migration_function_environment(cfg: TfConfig, fn: dict, migrate_fn: dict):
    (env,) = migrate_fn["environment"]
    assert unwrap(env["variables"]) == \
        "merge(local.db_connection_env, local.migrate_environment, local.migrate_dsql_environment)"
    me = cfg.locals["migrate_environment"]
    assert me["APP_FUNCTION"] == "migrate"
    # The owner on Aurora, admin (with a DbConnectAdmin token) on DSQL; never the API's user.
    assert unwrap(me["DB_USER"]) == "local.migrate_db_user"
    assert unwrap(cfg.locals["migrate_db_user"]) == 'local.use_dsql ? "admin" : local.db_owner_user'
    assert unwrap(me["DB_AUTH"]) == "local.migrate_db_auth"
    assert unwrap(cfg.locals["migrate_db_auth"]) == 'local.use_dsql ? "dsql-admin" : "iam"'
    assert me["DB_POOL_MAX"] == "1"
    for key in ("DB_ENGINE", "DB_NAME", "DB_CONNECT_TIMEOUT_SECS", "LOG_LEVEL"):
        assert me[key] == cfg.locals["lambda_environment_public"][key], key
    assert "IDENTITY_SOURCES" not in me and not any(k.startswith("JWT") for k in me)
    # DSQL: the role the migrations map app_runtime to is the API function's.
    dsql = unwrap(cfg.locals["migrate_dsql_environment"])
    assert dsql == "local.use_dsql ? {DSQL_RUNTIME_ROLE_ARN = aws_iam_role.lambda.arn} : {}", dsql


def test_migrations_run_on_apply_when_they_change(cfg: TfConfig):
    inv = cfg.resource("aws_lambda_invocation", "migrate")
    assert unwrap(inv.get("count")) == "local.run_migrations ? 1 : 0"
    assert unwrap(cfg.locals["run_migrations"]) == "var.migrate_on_apply", "on both engines"
    assert inv.get("function_name") == "${aws_lambda_function.migrate.function_name}"
    assert text_of(inv.get("input")) == '${jsonencode({action = "migrate"})}'
    triggers = inv.get("triggers", {})
    assert unwrap(triggers.get("migrations")) == "local.migrations_hash"
    h = text_of(cfg.locals["migrations_hash"])
    assert 'fileset(local.migrations_dir, "*.sql")' in h and "filesha256" in h
    assert cfg.locals["migrations_dir"] == \
        '${local.use_dsql ? "${path.module}/../migrations/dsql" : "${path.module}/../migrations"}', "the engine's own"
    assert "local.bootstrap_database" in text_of(cfg.resource("terraform_data", "bootstrap_database").get("count"))
    assert "terraform_data.bootstrap_database" in text_of(inv.get("depends_on")), "roles before migrations"
    post = " ".join(text_of(p["condition"]) for lc in inv.get("lifecycle", []) for p in lc.get("postcondition", []))
    assert "jsondecode(self.result).applied" in post and "jsondecode(self.result).already_applied" in post
    assert var_default(cfg, "migrate_on_apply") is True


def test_api_function_is_updated_after_the_migrations(fn: dict):
    assert "aws_lambda_invocation.migrate" in text_of(fn.get("depends_on"))


def test_one_time_setup_through_the_data_api(cfg: TfConfig):
    boot = cfg.resource("terraform_data", "bootstrap_database")
    (prov,) = [p["local-exec"] for p in boot.get("provisioner", []) if "local-exec" in p]
    assert prov["command"] == "${path.module}/../scripts/bootstrap-db.sh"
    env = prov["environment"]
    assert unwrap(env["BOOTSTRAP_CLUSTER"]) == "local.cluster.identifier"
    assert unwrap(env["BOOTSTRAP_DB_NAME"]) == "local.db_name"
    assert "local.create_cluster" in text_of(cfg.locals["bootstrap_database"])
    assert var_default(cfg, "bootstrap_database") is False
