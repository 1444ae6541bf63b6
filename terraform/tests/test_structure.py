"""What the deployment needs, asserted on the parsed HCL (no provider, no AWS): the provider,
the API function and API Gateway. IAM is in test_structure_iam.py, the database, cluster and
migrations in test_structure_database.py, variables and outputs in test_structure_hygiene.py.

Run from the repository root:  pytest terraform/tests
TF_DIR=<dir> points the tests at another copy (test_mutations.py does that).
"""

from __future__ import annotations

import re

from tfconfig import TfConfig, preconditions, refs_resource, text_of, unwrap, validation_text, var_default

# Names the Rust code reads (crates/lambda, crates/pgconn, crates/api).
REQUIRED_ENV = [
    "APP_FUNCTION",
    "DB_ENGINE",
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
    "CORS_ALLOW_ORIGINS",
    "LEGACY_USER_ISSUER",
    "PLANS",
    "JWT_JWKS",
    "DB_IDLE_SESSION_TIMEOUT_SECS",
    "METRICS_NAMESPACE",
    "METRICS_TENANT_DIMENSION",
    "IDEMPOTENCY_TTL_SECS",
]


CLOUDWATCH_RETENTION = {0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                        1096, 1827, 2192, 2557, 2922, 3288, 3653}


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
    assert version == ">= 6.25, < 7.0", "test_schema.py checks exactly these ends; change both together"
    m = re.search(r">=\s*(\d+)\.(\d+)", version)
    # data.aws_region.current.region exists from 6.0; test_schema.py checks both ends.
    assert m and int(m.group(1)) == 6, "hashicorp/aws must be pinned to >= 6.x (the floor of 5.x lacks aws_region.region)"
    assert re.search(r"<\s*7(\.0)*\b", version), "hashicorp/aws must stay below 7.0 (untested)"


def test_provider_region_and_tags(cfg: TfConfig):
    aws = cfg.providers.get("aws")
    assert aws, "no provider \"aws\" block"
    assert unwrap(aws[0].get("region")) == "var.aws_region"
    # Tags are set on each resource (test_schema.py checks every taggable one), not via default_tags.
    assert not aws[0].get("default_tags")
    assert unwrap(cfg.variables["tags"]["type"]).startswith("map(")
    assert cfg.locals.get("tags") == "${var.tags}"


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
    assert unwrap(fn.get("reserved_concurrent_executions")) == "local.reserved_concurrency"
    assert any(re.search(r"local\.reserved_concurrency\s*<=\s*local\.db_connection_budget", text_of(p.get("condition")))
               for p in preconditions(fn)), "need a precondition reserved concurrency <= the connection budget"
    budget = text_of(cfg.locals.get("db_connection_budget"))
    assert "var.db_max_connections" in budget and "local.cluster_max_connections" in budget
    reserved = var_default(cfg, "reserved_concurrent_executions")
    assert reserved is None, "unreserved by default: a new account cannot reserve (test_structure_first_apply.py)"
    desc = cfg.variables["db_max_connections"]["description"]
    assert "189" in desc and "2,000" in desc, "db_max_connections must state the Aurora Serverless v2 figures"
    validation_text(cfg, "reserved_concurrent_executions")


def test_log_group_has_retention_and_exists_before_the_function(cfg: TfConfig, fn: dict):
    assert var_default(cfg, "log_retention_days") == 14
    allowed = {int(n) for n in re.findall(r"\b\d+\b", re.search(r"\[([^\]]*)\]", validation_text(cfg, "log_retention_days")).group(1))}
    assert allowed == CLOUDWATCH_RETENTION
    groups = {
        name: body for name, body in cfg.resources_of("aws_cloudwatch_log_group").items()
        if body.get("name") == "/aws/lambda/" + fn["function_name"]
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
    assert unwrap(envs[0].get("variables")) == "merge(local.db_connection_env, local.lambda_environment)"
    env_text = cfg.resolve(text_of(envs[0].get("variables")))
    for name in REQUIRED_ENV:
        assert re.search(rf'(^|[\s{{,"]){name}"?\s*[=:]', env_text), f"environment does not set {name}"
    assert not re.search(r'(^|[\s{,"])AWS_REGION"?\s*[=:]', env_text), "AWS_REGION is reserved: Lambda sets it"
    public = cfg.locals.get("lambda_environment_public", {})
    assert public.get("DB_POOL_MAX") == "1", "one connection per Lambda instance"
    assert public.get("APP_FUNCTION") == "api"
    conn = cfg.locals.get("db_connection_env", {})
    assert unwrap(conn.get("DB_HOST")) == "local.db_host" and "local.db_port" in text_of(conn.get("DB_PORT"))


def test_environment_defaults(cfg: TfConfig):
    assert var_default(cfg, "db_port") == 5432
    assert var_default(cfg, "db_name") is None, "null: app on Aurora, postgres on DSQL"
    assert unwrap(cfg.locals["db_name"]) == 'local.use_dsql ? "postgres" : coalesce(var.db_name, "app")'
    assert var_default(cfg, "db_user") == "app_runtime"
    assert var_default(cfg, "db_engine") == "aurora-postgresql"
    assert var_default(cfg, "db_auth") is None, "deprecated: db_engine decides DB_AUTH"
    assert var_default(cfg, "log_level") == "info"
    engine = validation_text(cfg, "db_engine")
    assert '"aurora-postgresql"' in engine and '"dsql"' in engine
    auth = validation_text(cfg, "db_auth")
    assert '"iam"' in auth and '"dsql"' in auth and "password" not in auth
    # The function's DB_ENGINE and DB_AUTH follow db_engine, never db_auth.
    public = cfg.locals["lambda_environment_public"]
    assert public["DB_ENGINE"] == "${local.db_engine_env}" and public["DB_AUTH"] == "${local.db_auth}"
    assert unwrap(cfg.locals["db_engine_env"]) == 'local.use_dsql ? "dsql" : "postgres"'
    assert unwrap(cfg.locals["db_auth"]) == 'local.use_dsql ? "dsql" : "iam"'
    assert unwrap(cfg.locals["use_dsql"]) == 'var.db_engine == "dsql"'
    assert unwrap(cfg.locals["use_rds"]) == 'var.db_engine == "aurora-postgresql"'
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
    assert "var.bearer_jwt_jwks" in text_of(cfg.locals.get("bearer_key_set"))
    assert text_of(cfg.locals["lambda_environment_public"].get("JWT_JWKS")) == \
        "${local.use_bearer_jwt ? var.bearer_jwt_jwks : null}"


def test_bearer_jwt_needs_issuer_and_audience(fn: dict):
    """The function refuses to start bearer_jwt without both (crates/lambda/src/identity.rs)."""
    conds = [text_of(p.get("condition")) for p in preconditions(fn)]
    assert "${!local.use_bearer_jwt || (var.jwt_issuer != null && var.jwt_audience != null)}" in conds, conds


# ---------------------------------------------------------------------------
# API Gateway HTTP API
# ---------------------------------------------------------------------------


def test_http_api(cfg: TfConfig):
    api = cfg.resource("aws_apigatewayv2_api", "this")
    assert api.get("protocol_type") == "HTTP"


def test_cors_origins_reach_the_function_and_the_api(cfg: TfConfig):
    public = cfg.locals["lambda_environment_public"]
    assert text_of(public.get("CORS_ALLOW_ORIGINS")) == \
        '${length(var.cors_allow_origins) > 0 ? join(",", var.cors_allow_origins) : null}'
    assert var_default(cfg, "cors_allow_origins") == []
    assert unwrap(cfg.variables["cors_allow_origins"]["type"]) == "list(string)"
    # One place answers CORS: the function. An API-level configuration would make API Gateway
    # drop the function's CORS headers (each route's own methods) for a fixed list.
    api = cfg.resource("aws_apigatewayv2_api", "this")
    assert "cors_configuration" not in text_of(api)


def test_preflight_route_only_with_authorizer_and_cors(cfg: TfConfig):
    """A browser's OPTIONS preflight has no token: with the JWT authorizer on $default it needs
    an unauthenticated route of its own, to the same integration; without either it must not exist."""
    routes = {n: r for n, r in cfg.resources_of("aws_apigatewayv2_route").items()
              if str(r.get("route_key", "")).startswith("OPTIONS")}
    assert len(routes) == 1, "need one OPTIONS route"
    (name, route), = routes.items()
    assert route["route_key"] == "OPTIONS /{proxy+}"
    assert route.get("authorization_type") == "NONE" and "authorizer_id" not in route
    default = next(r for r in cfg.resources_of("aws_apigatewayv2_route").values() if r.get("route_key") == "$default")
    assert route.get("target") == default.get("target"), "the preflight goes to the same integration"
    assert unwrap(route.get("count")) == "local.cors_preflight_route ? 1 : 0"
    cond = text_of(cfg.locals.get("cors_preflight_route"))
    assert cond == "${local.use_apigw_jwt && length(var.cors_allow_origins) > 0}", cond


def test_lambda_proxy_integration_payload_2(cfg: TfConfig):
    integ = cfg.resource("aws_apigatewayv2_integration")
    assert integ.get("integration_type") == "AWS_PROXY"
    assert integ.get("payload_format_version") == "2.0"
    assert integ.get("integration_uri") == "${aws_lambda_function.this.invoke_arn}"


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
    perm = cfg.resource("aws_lambda_permission", "api_gateway")
    assert perm.get("action") == "lambda:InvokeFunction"
    assert perm.get("principal") == "apigateway.amazonaws.com"
    assert refs_resource(text_of(perm.get("function_name")), "aws_lambda_function", cfg)
    assert perm.get("source_arn") == "${aws_apigatewayv2_api.this.execution_arn}/*/*", \
        "source_arn must scope the permission to this API's execution ARN"
    assert perm.get("function_name") == "${aws_lambda_function.this.function_name}", \
        "API Gateway may invoke the API function only, never the migration function"


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


def test_stage_throttling_within_reserved_concurrency(cfg: TfConfig):
    cond = text_of(cfg.checks["throttling_within_concurrency"]["assert"][0]["condition"])
    assert "var.api_throttling_burst_limit <= local.reserved_concurrency" in cond
    assert "local.reserved_concurrency <= 0 ||" in cond, "unreserved (the default) does not trip it"
    headroom = text_of(cfg.checks["deploy_headroom"]["assert"][0]["condition"])
    assert "2 * local.reserved_concurrency <= local.db_connection_budget" in headroom


