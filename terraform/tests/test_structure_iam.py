"""IAM, asserted on the parsed HCL: who may assume the roles, what they may do (logs on their own
log group only, network interfaces, one database user each), and the organisation conventions
(role path, permissions boundary). Tags on every taggable resource: test_schema.py.
"""

from __future__ import annotations

import re

from tfconfig import TfConfig, blocks, statements_with_action, text_of, unwrap, validation_text, var_default

ROLES = {"lambda": "this", "migrate": "migrate"}  # role -> function


def test_execution_roles_are_assumable_by_lambda_only(cfg: TfConfig):
    for name in ROLES:
        role = cfg.resource("aws_iam_role", name)
        doc_ref = text_of(role.get("assume_role_policy"))
        m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_]+)\.json", doc_ref)
        assert m, "assume_role_policy must come from an aws_iam_policy_document"
        doc = cfg.data["aws_iam_policy_document"][m.group(1)]
        principals = [p for st in blocks(doc, "statement") for p in st.get("principals", [])]
        assert principals == [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}]


def test_each_function_has_its_own_role(cfg: TfConfig):
    api = cfg.resource("aws_lambda_function", "this")
    migrate = cfg.resource("aws_lambda_function", "migrate")
    assert api.get("role") == "${aws_iam_role.lambda.arn}"
    assert migrate.get("role") == "${aws_iam_role.migrate.arn}"


def test_roles_follow_organisation_conventions(cfg: TfConfig):
    for name, role in cfg.resources_of("aws_iam_role").items():
        assert unwrap(role.get("path")) == "var.iam_role_path", f"aws_iam_role.{name} needs path = var.iam_role_path"
        assert unwrap(role.get("permissions_boundary")) == "var.iam_permissions_boundary_arn", \
            f"aws_iam_role.{name} needs permissions_boundary = var.iam_permissions_boundary_arn"
        assert unwrap(role.get("tags")) == "local.tags"
    assert var_default(cfg, "iam_role_path") == "/"
    assert var_default(cfg, "iam_permissions_boundary_arn") is None


def test_no_managed_policy_grants_logs_on_every_log_group(cfg: TfConfig):
    arns = [text_of(a.get("policy_arn")) for a in cfg.resources_of("aws_iam_role_policy_attachment").values()]
    for arn in arns:
        assert not arn.endswith("AWSLambdaBasicExecutionRole"), "logs:* on every log group: use the inline policy"
        assert not arn.endswith("AWSLambdaVPCAccessExecutionRole"), "it carries logs:* on every log group too"
    assert all(a.endswith(":iam::aws:policy/AWSXRayDaemonWriteAccess") for a in arns), arns


def test_logs_only_on_the_functions_own_log_group(cfg: TfConfig):
    for doc, group in (("lambda", "aws_cloudwatch_log_group.lambda"), ("migrate", "aws_cloudwatch_log_group.migrate")):
        statements = [st for st in statements_with_action(cfg, "logs:PutLogEvents", doc)]
        assert len(statements) == 1, f"{doc}: one statement for the logs"
        st = statements[0]
        assert sorted(st["actions"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert st["resources"] == [f"${{{group}.arn}}", f"${{{group}.arn}}:*"], st["resources"]
    everything = " ".join(text_of(d) for d in cfg.data["aws_iam_policy_document"].values())
    assert "logs:*" not in everything and "logs:CreateLogGroup" not in everything


def test_vpc_network_interface_permissions_only_when_attached(cfg: TfConfig):
    actions = cfg.locals["vpc_eni_actions"]
    assert len(actions) == 6 and all(a.startswith("ec2:") for a in actions), actions
    assert "ec2:CreateNetworkInterface" in actions
    for doc in ("lambda", "migrate"):
        body = cfg.data["aws_iam_policy_document"][doc]
        dyn = [d["statement"] for d in body.get("dynamic", []) if "statement" in d
               and "local.vpc_eni_actions" in text_of(d["statement"])]
        assert len(dyn) == 1, f"{doc}: one statement for the network interfaces"
        assert "local.vpc_attached" in text_of(dyn[0].get("for_each")), "only with subnets"
        assert dyn[0]["content"][0]["actions"] == "${local.vpc_eni_actions}"


def test_api_role_logs_in_as_the_runtime_user_on_this_cluster_only(cfg: TfConfig):
    statements = [st for st in statements_with_action(cfg, "rds-db:connect", "lambda")
                  if st.get("sid") != "RdsIamConnectDedicated"]
    assert len(statements) == 1
    st = statements[0]
    assert st.get("actions") == ["rds-db:connect"], "rds-db:connect must stand alone in its statement"
    assert st.get("resources") == ["${local.rds_runtime_arn}"]
    assert cfg.locals["rds_runtime_arn"] == "${local.rds_dbuser_prefix}:${local.rds_cluster_part}/${var.db_user}"
    prefix = cfg.locals["rds_dbuser_prefix"]
    assert re.fullmatch(r"arn:\$\{data\.aws_partition\.current\.partition\}:rds-db:\$\{local\.region\}"
                        r":\$\{data\.aws_caller_identity\.current\.account_id\}:dbuser", prefix), prefix
    assert cfg.locals["region"] == "${data.aws_region.current.region}"


def test_no_dbuser_wildcard_unless_opted_in(cfg: TfConfig):
    part = unwrap(cfg.locals["rds_cluster_part"])
    assert part == 'var.rds_iam_connect_any_cluster ? "*" : try(local.cluster.resource_id, "none")', part
    assert var_default(cfg, "rds_iam_connect_any_cluster") is False
    assert unwrap(cfg.variables["rds_iam_connect_any_cluster"]["type"]) == "bool"
    # The cluster part is the looked-up (or created) cluster's resource ID.
    cluster = text_of(cfg.locals["cluster"])
    assert "data.aws_rds_cluster.this[0].cluster_resource_id" in cluster
    assert "aws_rds_cluster.this[0].cluster_resource_id" in cluster
    # Nothing else in any policy names a dbuser wildcard.
    for docs in cfg.data["aws_iam_policy_document"].values():
        assert "dbuser:*" not in text_of(docs)
    assert "dbuser:*" not in text_of(cfg.locals)
    cond = text_of(cfg.checks["rds_connect_scoped"]["assert"][0]["condition"])
    assert "var.rds_iam_connect_any_cluster" in cond, "opting in must be warned about"


def test_migrate_role_logs_in_as_the_owner_only_and_never_by_wildcard(cfg: TfConfig):
    statements = statements_with_action(cfg, "rds-db:connect", "migrate")
    assert len(statements) == 1
    assert statements[0]["resources"] == ["${local.rds_owner_arn}"]
    owner = cfg.locals["rds_owner_arn"]
    assert owner == '${local.rds_dbuser_prefix}:${try(local.cluster.resource_id, "none")}/${local.db_owner_user}', owner
    assert cfg.locals["db_owner_user"] == "app_owner"
    # And the API role never gets the owner.
    assert "db_owner_user" not in text_of(cfg.data["aws_iam_policy_document"]["lambda"])


def _dynamic_statement(cfg: TfConfig, doc: str, action: str) -> dict:
    body = cfg.data["aws_iam_policy_document"][doc]
    found = [d["statement"] for d in body.get("dynamic", []) if "statement" in d
             and action in (d["statement"]["content"][0].get("actions") or [])
             and d["statement"]["content"][0].get("sid") != "RdsIamConnectDedicated"]
    assert len(found) == 1, f"{doc}: one statement for {action}"
    return found[0]


def test_dsql_connect_is_scoped_to_the_cluster_arn(cfg: TfConfig):
    """The API logs in as a custom role (DbConnect), the migrations as admin (DbConnectAdmin),
    each on this one cluster's ARN: no wildcard, no other cluster, never the admin for the API."""
    for doc, action in (("lambda", "dsql:DbConnect"), ("migrate", "dsql:DbConnectAdmin")):
        statements = statements_with_action(cfg, action)
        assert len(statements) == 1, f"{action}: one statement, in the {doc} policy"
        st = _dynamic_statement(cfg, doc, action)
        assert unwrap(st["for_each"]) == "local.use_dsql ? [1] : []", "only with DSQL"
        content = st["content"][0]
        assert content["actions"] == [action], f"{action} must stand alone in its statement"
        assert content["resources"] == ["${local.dsql_cluster_arn}"], content["resources"]
        assert content.get("effect") == "Allow"
    assert not statements_with_action(cfg, "dsql:DbConnectAdmin", "lambda"), "the API never logs in as admin"
    assert not statements_with_action(cfg, "dsql:DbConnect", "migrate"), "the migrations log in as admin only"
    arn = unwrap(cfg.locals["dsql_cluster_arn"])
    assert arn == "local.create_dsql_cluster ? aws_dsql_cluster.this[0].arn : var.dsql_cluster_arn", arn
    # The variable refuses wildcards, and no policy names a DSQL wildcard.
    assert "cluster/[a-z0-9]+$" in validation_text(cfg, "dsql_cluster_arn")
    for docs in cfg.data["aws_iam_policy_document"].values():
        text = text_of(docs)
        assert "dsql:*" not in text and "cluster/*" not in text
    # Aurora's grants only on Aurora.
    for doc, action in (("lambda", "rds-db:connect"), ("migrate", "rds-db:connect")):
        assert unwrap(_dynamic_statement(cfg, doc, action)["for_each"]) == "local.use_rds ? [1] : []"


def test_policies_are_attached_to_their_roles(cfg: TfConfig):
    api = cfg.resource("aws_iam_role_policy", "lambda")
    assert api.get("role") == "${aws_iam_role.lambda.id}"
    assert api.get("policy") == "${data.aws_iam_policy_document.lambda.json}"
    mig = cfg.resource("aws_iam_role_policy", "migrate")
    assert mig.get("role") == "${aws_iam_role.migrate.id}"
    assert mig.get("policy") == "${data.aws_iam_policy_document.migrate.json}"


def test_dedicated_clusters_get_exactly_the_listed_users(cfg: TfConfig):
    """Silo tenants on other clusters (docs/silo.md): one statement, only when some are listed,
    naming each listed cluster's runtime user and nothing wider."""
    dedicated = [st for st in statements_with_action(cfg, "rds-db:connect", "lambda")
                 if st.get("sid") == "RdsIamConnectDedicated"]
    assert len(dedicated) == 1
    st = dedicated[0]
    assert st.get("actions") == ["rds-db:connect"]
    res = text_of(st.get("resources"))
    assert "for d in var.dedicated_database_users" in res
    assert "${local.rds_dbuser_prefix}:${d.cluster_resource_id}/${d.user}" in res
    assert "*" not in res
    policy = cfg.data["aws_iam_policy_document"]["lambda"]
    dyn = [d["statement"] for d in policy.get("dynamic", []) if "statement" in d
           and d["statement"]["content"][0].get("sid") == "RdsIamConnectDedicated"]
    assert len(dyn) == 1
    guard = text_of(dyn[0].get("for_each"))
    assert "local.use_rds" in guard and "length(var.dedicated_database_users) > 0" in guard
    assert var_default(cfg, "dedicated_database_users") == []
    cond = validation_text(cfg, "dedicated_database_users")
    assert "^cluster-[A-Z0-9]{26}$" in cond and "^[a-z_][a-z0-9_]{0,62}$" in cond
    assert cfg.variables["dedicated_database_users"]["description"]
    # And the cap on those connections reaches the function.
    assert var_default(cfg, "placement_max_connections") == 2
    assert "var.placement_max_connections >= 1" in validation_text(cfg, "placement_max_connections")
    public = cfg.locals["lambda_environment_public"]
    assert public["DB_PLACEMENT_MAX_CONNECTIONS"] == "${tostring(var.placement_max_connections)}"
