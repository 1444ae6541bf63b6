"""What the deployment needs, asserted on the parsed HCL (no provider, no AWS).

Run from the repository root:  pytest terraform/tests
TF_DIR=<dir> points the tests at another copy (test_mutations.py does that).
"""

from __future__ import annotations

import json
import re

import pytest

from tfconfig import TfConfig, blocks, load, preconditions, text_of, unwrap, walk

# Names the Rust code reads (crates/lambda, crates/store, crates/api).
REQUIRED_ENV = [
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_AUTH",
    "DB_CONNECT_TIMEOUT_SECS",
    "DB_STATEMENT_TIMEOUT_MS",
    "DB_POOL_MAX",
    "LOG_LEVEL",
    "IDENTITY_SOURCES",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_ALGORITHM",
    "JWT_PUBLIC_KEY",
    "JWT_HS256_SECRET",
]

# What scripts/psql.sh, scripts/migrate.sh and the deploy guide read.
REQUIRED_OUTPUTS = [
    "api_url",
    "api_id",
    "lambda_function_name",
    "lambda_function_arn",
    "lambda_iam_role_arn",
    "lambda_log_group_name",
    "api_access_log_group_name",
    "db_host",
    "db_port",
    "db_name",
    "db_user",
    "aws_region",
]

CLOUDWATCH_RETENTION = {0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                        1096, 1827, 2192, 2557, 2922, 3288, 3653}


@pytest.fixture(scope="module")
def cfg() -> TfConfig:
    return load()


@pytest.fixture(scope="module")
def fn(cfg: TfConfig) -> dict:
    return cfg.resource("aws_lambda_function")


def var_default(cfg: TfConfig, name: str):
    assert name in cfg.variables, f"variable {name} is not declared"
    assert "default" in cfg.variables[name], f"variable {name} has no default"
    return cfg.variables[name]["default"]


def validation_text(cfg: TfConfig, name: str) -> str:
    vals = cfg.variables[name].get("validation", [])
    assert vals, f"variable {name} has no validation block"
    return " ".join(text_of(v.get("condition")) for v in vals)


def refs_resource(expr: str, rtype: str, cfg: TfConfig) -> str | None:
    """Name of the declared `rtype` resource that expr references, if any."""
    for name in cfg.resources_of(rtype):
        if re.search(rf"\b{re.escape(rtype)}\.{re.escape(name)}\b", expr):
            return name
    return None


# ---------------------------------------------------------------------------
# Terraform and provider
# ---------------------------------------------------------------------------


def test_terraform_and_aws_provider_versions(cfg: TfConfig):
    assert cfg.terraform, "no terraform {} block"
    tf = cfg.terraform[0]
    m = re.search(r">=\s*1\.(\d+)", tf.get("required_version", ""))
    assert m and int(m.group(1)) >= 5, "required_version must be >= 1.5 (check blocks)"
    providers = {}
    for rp in tf.get("required_providers", []):
        providers.update(rp)
    assert providers.get("aws", {}).get("source") == "hashicorp/aws"
    version = providers["aws"].get("version", "")
    m = re.search(r">=\s*(\d+)\.(\d+)", version)
    # data.aws_region.current.region exists from 6.0; test_schema.py checks both ends.
    assert m and int(m.group(1)) == 6, "hashicorp/aws must be pinned to >= 6.x (the floor of 5.x lacks aws_region.region)"
    assert re.search(r"<\s*7(\.0)*\b", version), "hashicorp/aws must stay below 7.0 (untested)"


def test_provider_applies_tags_variable_via_default_tags(cfg: TfConfig):
    aws = cfg.providers.get("aws")
    assert aws, "no provider \"aws\" block"
    tags = [dt.get("tags") for dt in aws[0].get("default_tags", [])]
    assert tags == ["${var.tags}"]
    assert unwrap(cfg.variables["tags"]["type"]).startswith("map(")


# ---------------------------------------------------------------------------
# Lambda function
# ---------------------------------------------------------------------------


def test_lambda_runtime_and_handler(fn: dict):
    assert fn.get("runtime") == "provided.al2023"
    assert fn.get("handler") == "bootstrap"


def test_architecture_variable_defaults_to_arm64_and_allows_x86_64(cfg: TfConfig, fn: dict):
    assert fn.get("architectures") == ["${var.architecture}"]
    assert var_default(cfg, "architecture") == "arm64"
    cond = validation_text(cfg, "architecture")
    assert '"arm64"' in cond and '"x86_64"' in cond


def test_zip_path_defaults_to_dist_lambda_zip_and_hash_tolerates_missing_zip(cfg: TfConfig, fn: dict):
    assert var_default(cfg, "lambda_zip_path") is None
    local = text_of(cfg.locals.get("lambda_zip_path"))
    assert "var.lambda_zip_path" in local and "${path.module}/../dist/lambda.zip" in local
    assert unwrap(fn.get("filename")) == "local.lambda_zip_path"
    hash_expr = text_of(fn.get("source_code_hash"))
    assert re.search(r"fileexists\(local\.lambda_zip_path\)\s*\?\s*filebase64sha256\(local\.lambda_zip_path\)\s*:\s*null", hash_expr), \
        "source_code_hash must be null while the zip does not exist (validate before packaging)"


def test_memory_and_timeout_defaults_and_ranges(cfg: TfConfig, fn: dict):
    assert unwrap(fn.get("memory_size")) == "var.memory_size"
    assert unwrap(fn.get("timeout")) == "var.timeout"
    assert var_default(cfg, "memory_size") == 128
    assert var_default(cfg, "timeout") == 40
    mem = validation_text(cfg, "memory_size")
    assert "128" in mem and "10240" in mem
    tmo = validation_text(cfg, "timeout")
    assert "900" in tmo and ">= 1" in tmo


def test_timeout_leaves_margin_over_connect_timeout(cfg: TfConfig, fn: dict):
    timeout = var_default(cfg, "timeout")
    connect = var_default(cfg, "db_connect_timeout_secs")
    assert connect == 30
    assert timeout > connect and timeout >= connect + 5
    margins = [
        int(m.group(1))
        for p in preconditions(fn)
        if (m := re.search(r"var\.timeout\s*>=\s*var\.db_connect_timeout_secs\s*\+\s*(\d+)", text_of(p.get("condition"))))
    ]
    assert margins and max(margins) >= 5, "the function needs a precondition timeout >= db_connect_timeout_secs + 5"


def test_statement_timeout_below_function_timeout(cfg: TfConfig, fn: dict):
    assert var_default(cfg, "db_statement_timeout_ms") == 10000
    assert any(re.search(r"var\.db_statement_timeout_ms\s*<\s*var\.timeout\s*\*\s*1000", text_of(p.get("condition")))
               for p in preconditions(fn))


def test_connection_budget_bounds_reserved_concurrency(cfg: TfConfig, fn: dict):
    assert unwrap(fn.get("reserved_concurrent_executions")) == "var.reserved_concurrent_executions"
    assert any(re.search(r"var\.reserved_concurrent_executions\s*<=\s*var\.db_max_connections", text_of(p.get("condition")))
               for p in preconditions(fn)), "need a precondition reserved concurrency <= db_max_connections"
    reserved = var_default(cfg, "reserved_concurrent_executions")
    budget = var_default(cfg, "db_max_connections")
    assert reserved == -1 or 0 <= reserved <= budget
    desc = cfg.variables["db_max_connections"]["description"]
    assert "189" in desc and "2,000" in desc, "db_max_connections must state the Aurora Serverless v2 figures"
    validation_text(cfg, "reserved_concurrent_executions")


def test_log_group_has_retention_and_exists_before_the_function(cfg: TfConfig, fn: dict):
    assert var_default(cfg, "log_retention_days") == 14
    allowed = {int(n) for n in re.findall(r"\b\d+\b", re.search(r"\[([^\]]*)\]", validation_text(cfg, "log_retention_days")).group(1))}
    assert allowed == CLOUDWATCH_RETENTION
    groups = {
        name: body for name, body in cfg.resources_of("aws_cloudwatch_log_group").items()
        if str(body.get("name", "")).startswith("/aws/lambda/")
    }
    assert len(groups) == 1, "need one /aws/lambda/<function> log group"
    (gname, group), = groups.items()
    assert group["name"] == "/aws/lambda/" + fn["function_name"], "log group name must follow the function name"
    assert unwrap(group.get("retention_in_days")) == "var.log_retention_days"
    deps = [unwrap(d) for d in fn.get("depends_on", [])]
    assert f"aws_cloudwatch_log_group.{gname}" in deps, "the function must depend_on its log group"


def test_environment_sets_every_variable_the_code_reads(cfg: TfConfig, fn: dict):
    envs = fn.get("environment", [])
    assert len(envs) == 1
    env_text = cfg.resolve(text_of(envs[0].get("variables")))
    for name in REQUIRED_ENV:
        assert re.search(rf'(^|[\s{{,"]){name}"?\s*[=:]', env_text), f"environment does not set {name}"
    assert not re.search(r'(^|[\s{,"])AWS_REGION"?\s*[=:]', env_text), "AWS_REGION is reserved: Lambda sets it"
    public = cfg.locals.get("lambda_environment_public", {})
    assert public.get("DB_POOL_MAX") == "1", "one connection per Lambda instance"


def test_environment_defaults(cfg: TfConfig):
    assert var_default(cfg, "db_port") == 5432
    assert var_default(cfg, "db_name") == "app"
    assert var_default(cfg, "db_user") == "app_runtime"
    assert var_default(cfg, "db_auth") == "iam"
    assert var_default(cfg, "log_level") == "info"
    auth = validation_text(cfg, "db_auth")
    assert '"iam"' in auth and '"dsql"' in auth and "password" not in auth
    assert '"info"' in validation_text(cfg, "log_level")
    alg = validation_text(cfg, "jwt_algorithm")
    assert all(f'"{a}"' in alg for a in ("RS256", "ES256", "HS256"))
    assert cfg.variables["bearer_jwt_hs256_secret"].get("sensitive") is True


def test_identity_modes_are_wired(cfg: TfConfig):
    ident = text_of(cfg.locals.get("identity_sources"))
    assert '"bearer_jwt"' in ident and '"apigw_jwt"' in ident and '""' in ident, \
        "IDENTITY_SOURCES must be bearer_jwt, apigw_jwt or empty (closed)"
    apigw = text_of(cfg.locals.get("use_apigw_jwt"))
    assert "var.jwt_issuer" in apigw and "var.jwt_audience" in apigw


# ---------------------------------------------------------------------------
# API Gateway HTTP API
# ---------------------------------------------------------------------------


def test_http_api(cfg: TfConfig):
    api = cfg.resource("aws_apigatewayv2_api", "this")
    assert api.get("protocol_type") == "HTTP"


def test_lambda_proxy_integration_payload_2(cfg: TfConfig):
    integ = cfg.resource("aws_apigatewayv2_integration")
    assert integ.get("integration_type") == "AWS_PROXY"
    assert integ.get("payload_format_version") == "2.0"
    assert refs_resource(text_of(integ.get("integration_uri")), "aws_lambda_function", cfg)
    assert "invoke_arn" in text_of(integ.get("integration_uri"))


def test_default_route_targets_the_lambda_integration(cfg: TfConfig):
    routes = [r for r in cfg.resources_of("aws_apigatewayv2_route").values() if r.get("route_key") == "$default"]
    assert len(routes) == 1, "need exactly one $default route"
    target = routes[0].get("target", "")
    integ = refs_resource(target, "aws_apigatewayv2_integration", cfg)
    assert integ and target == f"integrations/${{aws_apigatewayv2_integration.{integ}.id}}"
    assert refs_resource(text_of(routes[0].get("api_id")), "aws_apigatewayv2_api", cfg) == "this"


def test_default_stage_auto_deploys_and_logs_access(cfg: TfConfig):
    stages = [s for s in cfg.resources_of("aws_apigatewayv2_stage").values() if s.get("name") == "$default"]
    assert len(stages) == 1, "need the $default stage"
    stage = stages[0]
    assert stage.get("auto_deploy") is True
    logs = stage.get("access_log_settings", [])
    assert len(logs) == 1
    dest = text_of(logs[0].get("destination_arn"))
    group = refs_resource(dest, "aws_cloudwatch_log_group", cfg)
    assert group and not cfg.resources_of("aws_cloudwatch_log_group")[group]["name"].startswith("/aws/lambda/"), \
        "access logs go to their own log group"
    fmt = text_of(logs[0].get("format"))
    assert "jsonencode" in fmt
    for field in ("$context.requestId", "$context.status", "$context.routeKey", "$context.integrationErrorMessage"):
        assert field in fmt, f"access log format lacks {field}"
    assert re.search(r"\$context\.(responseLatency|integration\.latency|integrationLatency)", fmt)
    settings = stage.get("default_route_settings", [])
    assert settings and unwrap(settings[0].get("throttling_burst_limit")) == "var.api_throttling_burst_limit"
    assert unwrap(settings[0].get("throttling_rate_limit")) == "var.api_throttling_rate_limit"


def test_permission_is_scoped_to_this_api(cfg: TfConfig):
    perm = cfg.resource("aws_lambda_permission")
    assert perm.get("action") == "lambda:InvokeFunction"
    assert perm.get("principal") == "apigateway.amazonaws.com"
    assert refs_resource(text_of(perm.get("function_name")), "aws_lambda_function", cfg)
    assert perm.get("source_arn") == "${aws_apigatewayv2_api.this.execution_arn}/*/*", \
        "source_arn must scope the permission to this API's execution ARN"


def test_jwt_authorizer_guards_default_route_when_configured(cfg: TfConfig):
    auth = cfg.resource("aws_apigatewayv2_authorizer")
    assert auth.get("authorizer_type") == "JWT"
    assert auth.get("identity_sources") == ["$request.header.Authorization"]
    jwt = auth.get("jwt_configuration", [])
    assert jwt and unwrap(jwt[0].get("issuer")) == "var.jwt_issuer"
    assert jwt[0].get("audience") == ["${var.jwt_audience}"]
    assert "local.use_apigw_jwt" in text_of(auth.get("count"))
    route = next(r for r in cfg.resources_of("aws_apigatewayv2_route").values() if r.get("route_key") == "$default")
    assert refs_resource(text_of(route.get("authorizer_id")), "aws_apigatewayv2_authorizer", cfg)
    assert '"JWT"' in text_of(route.get("authorization_type"))


# ---------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------


def test_execution_role_is_assumable_by_lambda_only(cfg: TfConfig):
    role = cfg.resource("aws_iam_role", "lambda")
    doc_ref = text_of(role.get("assume_role_policy"))
    m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_]+)\.json", doc_ref)
    assert m, "assume_role_policy must come from an aws_iam_policy_document"
    doc = cfg.data["aws_iam_policy_document"][m.group(1)]
    principals = [p for st in blocks(doc, "statement") for p in st.get("principals", [])]
    assert principals == [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}]


def test_basic_and_vpc_execution_policies(cfg: TfConfig):
    arns = {name: text_of(a.get("policy_arn")) for name, a in cfg.resources_of("aws_iam_role_policy_attachment").items()}
    basic = [n for n, a in arns.items() if a.endswith("service-role/AWSLambdaBasicExecutionRole")]
    assert basic, "AWSLambdaBasicExecutionRole must be attached"
    vpc = [n for n, a in arns.items() if a.endswith("service-role/AWSLambdaVPCAccessExecutionRole")]
    assert vpc, "AWSLambdaVPCAccessExecutionRole must be attached when the function is in a VPC"
    count = text_of(cfg.resources_of("aws_iam_role_policy_attachment")[vpc[0]].get("count"))
    assert "vpc" in count.lower() or "subnet_ids" in count


def _statements_with_action(cfg: TfConfig, action: str) -> list[dict]:
    found = []
    for docs in cfg.data.get("aws_iam_policy_document", {}).values():
        for node in walk(docs):
            if isinstance(node, dict) and action in (node.get("actions") or []):
                found.append(node)
    return found


def test_rds_connect_is_scoped_to_the_db_user_on_the_cluster(cfg: TfConfig):
    statements = _statements_with_action(cfg, "rds-db:connect")
    assert statements, "no statement allows rds-db:connect"
    for st in statements:
        assert st.get("actions") == ["rds-db:connect"], "rds-db:connect must stand alone in its statement"
        resources = st.get("resources") or []
        assert resources, "rds-db:connect statement without resources"
        for res in resources:
            assert res.strip() not in ("*", '"*"'), "rds-db:connect must not be granted on *"
            arn = cfg.resolve(res)
            m = re.fullmatch(
                r"arn:\$\{[^}]*partition[^}]*\}:rds-db:\$\{[^}]*region[^}]*\}:\$\{[^}]*account_id[^}]*\}"
                r":dbuser:\$\{(?P<cluster>[^}]*)\}/\$\{(?P<user>[^}]*)\}",
                arn,
            )
            assert m, f"rds-db:connect resource has the wrong form: {arn}"
            assert m.group("user").strip() == "var.db_user"
            cluster = m.group("cluster").strip()
            # The cluster part is the resource id; "*" only as the fallback when it is unset.
            assert cluster in (
                "var.db_cluster_resource_id",
                'coalesce(var.db_cluster_resource_id, "*")',
                'var.db_cluster_resource_id == null ? "*" : var.db_cluster_resource_id',
                'var.db_cluster_resource_id != null ? var.db_cluster_resource_id : "*"',
            ), f"unexpected cluster part in rds-db:connect resource: {cluster}"
    # The statement only exists for IAM auth, and the role carries the document.
    policies = [text_of(p.get("policy")) for p in cfg.resources_of("aws_iam_role_policy").values()]
    assert any("data.aws_iam_policy_document." in p for p in policies)


def test_dsql_connect_is_scoped_to_the_cluster_arn(cfg: TfConfig):
    statements = _statements_with_action(cfg, "dsql:DbConnect")
    assert statements
    for st in statements:
        assert st.get("resources") == ["${var.dsql_cluster_arn}"]
    assert not _statements_with_action(cfg, "dsql:DbConnectAdmin"), "the function never needs the admin role"


def test_cluster_resource_id_shape_is_validated(cfg: TfConfig):
    assert var_default(cfg, "db_cluster_resource_id") is None
    cond = validation_text(cfg, "db_cluster_resource_id")
    m = re.search(r'regex\("(\^cluster-[^"]+)"', cond)
    assert m, "validation must match the cluster-XXXX shape"
    pattern = m.group(1).replace("\\\\", "\\")
    assert re.fullmatch(pattern, "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY0")
    for bad in ("my-cluster", "cluster-abc", "arn:aws:rds:eu-central-1:123456789012:cluster:x", "db-ABC"):
        assert not re.fullmatch(pattern, bad), bad


def test_wildcard_cluster_and_closed_identity_are_warned_about(cfg: TfConfig):
    conditions = {name: text_of(c) for name, c in cfg.checks.items()}
    assert any("var.db_cluster_resource_id" in c and "null" in c for c in conditions.values()), \
        "need a check that warns when db_cluster_resource_id is unset"
    assert any("local.identity_sources" in c for c in conditions.values()), \
        "need a check that warns when no identity source is configured"


# ---------------------------------------------------------------------------
# Variables, outputs, hygiene
# ---------------------------------------------------------------------------


def _all_text(cfg: TfConfig) -> str:
    return "\n".join(json.dumps(parsed) for parsed in cfg.files.values())


def test_every_referenced_variable_is_declared(cfg: TfConfig):
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", _all_text(cfg)))
    missing = sorted(used - set(cfg.variables))
    assert not missing, f"referenced but not declared in variables.tf: {missing}"


def test_every_declared_variable_is_used(cfg: TfConfig):
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", _all_text(cfg)))
    unused = sorted(set(cfg.variables) - used)
    assert not unused, f"declared but never used: {unused}"


def test_variables_live_in_variables_tf(cfg: TfConfig):
    for fname, parsed in cfg.files.items():
        if fname != "variables.tf":
            assert not parsed.get("variable"), f"{fname} declares variables; keep them in variables.tf"


def test_validations_reference_only_their_own_variable(cfg: TfConfig):
    # Cross-variable validation needs Terraform 1.9; required_version is 1.5.
    for name, body in cfg.variables.items():
        for v in body.get("validation", []):
            refs = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", text_of(v.get("condition"))))
            assert refs == {name}, f"validation of {name} references {sorted(refs)}; use a precondition instead"
            assert not re.search(r"\b(local|data|aws_[a-z0-9_]+)\.", text_of(v.get("condition"))), name


def test_every_variable_has_description_and_type(cfg: TfConfig):
    for name, body in cfg.variables.items():
        assert isinstance(body.get("description"), str) and len(body["description"].strip()) >= 10, \
            f"variable {name} needs a description"
        assert body.get("type"), f"variable {name} needs a type"


def test_required_outputs_exist_with_descriptions(cfg: TfConfig):
    for name in REQUIRED_OUTPUTS:
        assert name in cfg.outputs, f"output {name} missing"
        assert cfg.outputs[name].get("description"), f"output {name} needs a description"
        assert cfg.outputs[name].get("value") is not None


def test_checkov_skips_carry_reasons(cfg: TfConfig):
    skips = [(f, m) for f, raw in cfg.raw.items() for m in re.finditer(r"checkov:skip=([^\s:]+)(?::(.*))?", raw)]
    for fname, m in skips:
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", m.group(1)), f"{fname}: malformed skip {m.group(0)}"
        reason = (m.group(2) or "").strip()
        assert len(reason) >= 20, f"{fname}: skip of {m.group(1)} needs a real reason"


def test_tfvars_example_names_declared_variables(cfg: TfConfig):
    path = cfg.root / "terraform.tfvars.example"
    assert path.exists(), "terraform.tfvars.example missing"
    text = path.read_text(encoding="utf-8")
    active = set(re.findall(r"^([a-z_][a-z0-9_]*)\s*=", text, re.M))
    mentioned = active | set(re.findall(r"^#\s?([a-z_][a-z0-9_]*)\s+=", text, re.M))
    assert not sorted(mentioned - set(cfg.variables)), f"example sets undeclared variables: {sorted(mentioned - set(cfg.variables))}"
    required = {n for n, b in cfg.variables.items() if "default" not in b}
    assert required <= active, f"required variables missing from the example: {sorted(required - active)}"
