# Derived values that depend on variables only (no provider data), so that
# terraform/tests can evaluate them with a bare `terraform console`. Values
# that need the cluster (host, port, resource ID, region) are in database.tf.

locals {
  function_name         = var.name
  migrate_function_name = "${var.name}-migrate"
  lambda_zip_path       = coalesce(var.lambda_zip_path, "${path.module}/../dist/lambda.zip")
  tags                  = var.tags

  vpc_attached = length(var.subnet_ids) > 0

  # Who may call the API. One source at a time, picked in this order:
  #   1. a bearer key is given (public key, or an HS256 secret)
  #        -> bearer_jwt: the function verifies `Authorization: Bearer` itself
  #           (signature with the key; iss/aud when jwt_issuer/jwt_audience are set);
  #   2. jwt_issuer and jwt_audience are given
  #        -> apigw_jwt: an API Gateway JWT authorizer checks the token before the
  #           function runs, and the function reads the verified claims;
  #   3. nothing -> closed: IDENTITY_SOURCES is empty and every /api call gets 401
  #      (checks.tf warns). /health stays open.
  # A key wins over issuer+audience because bearer_jwt needs those two as well
  # (to check iss and aud), so the other order would make it unreachable.
  # nonsensitive(): only whether the secret is set drives these choices (and
  # `count`), never its value.
  bearer_key_set   = var.bearer_jwt_jwks != null || var.bearer_jwt_public_key_pem != null || nonsensitive(var.bearer_jwt_hs256_secret != null)
  use_bearer_jwt   = local.bearer_key_set
  use_apigw_jwt    = !local.bearer_key_set && var.jwt_issuer != null && var.jwt_audience != null
  identity_sources = local.use_bearer_jwt ? "bearer_jwt" : (local.use_apigw_jwt ? "apigw_jwt" : "")

  # A key set (JWT_JWKS) wins over a single key in the function.
  use_hs256 = local.use_bearer_jwt && var.bearer_jwt_jwks == null && var.jwt_algorithm == "HS256"

  # A browser's CORS preflight carries no token: with the JWT authorizer on
  # $default it would be refused with 401, so an unauthenticated
  # `OPTIONS /{proxy+}` route sends it to the function (which answers it from
  # CORS_ALLOW_ORIGINS). Without the authorizer $default lets it through anyway.
  cors_preflight_route = local.use_apigw_jwt && length(var.cors_allow_origins) > 0

  # The engine (db_engine). Aurora PostgreSQL: Terraform looks an existing
  # cluster up, or creates one (create_cluster: the Aurora resources count on
  # local.create_cluster). Aurora DSQL: an existing cluster by its ARN, or one
  # created in dsql.tf. The migration function runs for every combination.
  use_rds             = var.db_engine == "aurora-postgresql"
  use_dsql            = var.db_engine == "dsql"
  lookup_cluster      = local.use_rds && !var.create_cluster
  create_cluster      = local.use_rds && var.create_cluster
  create_dsql_cluster = local.use_dsql && var.create_cluster
  run_migrations      = var.migrate_on_apply
  bootstrap_database  = local.create_cluster || (local.lookup_cluster && var.bootstrap_database)

  # What the functions are told (crates/store reads DB_ENGINE and DB_AUTH).
  # DSQL: the API logs in as app_runtime with a DbConnect token, the
  # migrations as admin with a DbConnectAdmin token, both to the one database
  # a DSQL cluster has, postgres. (db_auth is deprecated: a precondition in
  # lambda.tf only checks that it agrees.)
  db_engine_env   = local.use_dsql ? "dsql" : "postgres"
  db_auth         = local.use_dsql ? "dsql" : "iam"
  migrate_db_auth = local.use_dsql ? "dsql-admin" : "iam"
  db_name         = local.use_dsql ? "postgres" : coalesce(var.db_name, "app")
  migrate_db_user = local.use_dsql ? "admin" : local.db_owner_user

  # An existing DSQL cluster, as its ARN (arn:aws:dsql:<region>:<account>:cluster/<id>)
  # and its endpoint (<id>.dsql.<region>.on.aws) name it; null where they do not.
  dsql_arn_region      = try(split(":", var.dsql_cluster_arn)[3], null)
  dsql_arn_cluster_id  = try(split("/", var.dsql_cluster_arn)[1], null)
  dsql_host_cluster_id = try(regex("^([a-z0-9]+)\\.dsql\\.[a-z0-9-]+\\.on\\.aws$", var.db_host)[0], null)
  dsql_host_region     = try(regex("\\.dsql\\.([a-z0-9-]+)\\.on\\.aws$", var.db_host)[0], null)

  # The identifier to look up: db_cluster_identifier itself, or the last part
  # of its ARN (arn:aws:rds:<region>:<account>:cluster:<identifier>).
  cluster_lookup_id = (
    var.db_cluster_identifier == null ? "" :
    startswith(var.db_cluster_identifier, "arn:") ? split(":", var.db_cluster_identifier)[6] : var.db_cluster_identifier
  )
  # The region an ARN names (null for a plain identifier): checked against the
  # deployment's region before the lookup, which would only say "not found".
  cluster_arn_region = try(split(":", var.db_cluster_identifier)[3], null)

  # The role that owns the schema and runs migrations (migrations/bootstrap/roles.sql
  # creates it under this name, and the migrations SET ROLE to it).
  db_owner_user = "app_owner"

  # Connection math (docs/deploy.md): each warm instance holds one connection.
  # Aurora Serverless v2 PostgreSQL's max_connections follows the maximum
  # capacity: 189 at 1 ACU, about 210 per ACU above that (3,360 at 16), at most
  # 5,000, and at most 2,000 when the minimum is 0 or 0.5 ACU. 189 per ACU is a
  # floor of that; 20 connections stay free for the migration function, psql
  # sessions and RDS's reserved connections.
  cluster_max_connections = floor(min(var.cluster_min_acu < 1 ? 2000 : 5000, 189 * var.cluster_max_acu))
  # Aurora DSQL's quotas (Aurora DSQL User Guide, "Cluster quotas"): 10,000
  # connections per cluster (adjustable: then set db_max_connections), and new
  # connections at 100 per second, with a burst of 1,000 (neither adjustable).
  dsql_max_connections  = 10000
  dsql_connection_burst = 1000
  dsql_connection_rate  = 100
  db_connection_budget = (
    var.db_max_connections != null ? var.db_max_connections :
    local.use_dsql ? local.dsql_max_connections - 20 :
    local.create_cluster ? local.cluster_max_connections - 20 : 150
  )

  # Reserved concurrency, as Lambda takes it: -1 is unreserved, the default
  # (null), because a new account cannot reserve any (variables.tf).
  reserved_concurrency = var.reserved_concurrent_executions == null ? -1 : var.reserved_concurrent_executions
  # Unreserved, what bounds the instances (and so the connections) is the
  # account's concurrency quota and the stage's throttling: a burst, then the
  # rate, each request holding an instance for up to the function's timeout
  # when the database is slow (an Aurora resume, a stalled query).
  unreserved_peak_concurrency = var.api_throttling_burst_limit + ceil(var.api_throttling_rate_limit * var.timeout)

  # Auto-pause (cluster_min_acu = 0) needs Aurora PostgreSQL 13.15, 14.12,
  # 15.7 or 16.3 or later in each major version; every later major has it
  # (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html,
  # "Prerequisites and Limitations"). cluster.tf checks the looked-up version.
  auto_pause_min_minor_version = { "13" = 15, "14" = 12, "15" = 7, "16" = 3 }

  # Observability (observability.tf): alarms and their topic, the dashboard.
  # A topic is created only when alarms are on and none is given.
  create_alarm_topic = var.alarms_enabled && var.alarm_sns_topic_arn == null
  alarm_email_count  = var.alarms_enabled && var.alarm_email != null ? 1 : 0

  # The function's environment: exactly the names the Rust code reads, except
  # DB_HOST and DB_PORT, which come from the cluster (database.tf). AWS_REGION
  # is set by Lambda itself. Entries that are null are left out, so an unused
  # JWT_* variable is absent rather than empty.
  lambda_environment_public = {
    APP_FUNCTION            = "api"
    DB_ENGINE               = local.db_engine_env
    DB_NAME                 = local.db_name
    DB_USER                 = var.db_user
    DB_AUTH                 = local.db_auth
    DB_CONNECT_TIMEOUT_SECS = tostring(var.db_connect_timeout_secs)
    DB_STATEMENT_TIMEOUT_MS = tostring(var.db_statement_timeout_ms)
    # The server ends sessions idle this long, so that frozen instances let an
    # Aurora Serverless v2 cluster pause ("0": never).
    DB_IDLE_SESSION_TIMEOUT_SECS = tostring(var.db_idle_session_timeout_seconds)
    # One connection per Lambda instance: an instance serves one request at a
    # time, and the connection budget (db_max_connections) counts instances.
    DB_POOL_MAX = "1"
    LOG_LEVEL   = var.log_level
    # Silo tenants: connections to dedicated databases per instance (docs/silo.md).
    DB_PLACEMENT_MAX_CONNECTIONS = tostring(var.placement_max_connections)

    # One Embedded Metric Format record per request (docs/observability.md).
    METRICS_NAMESPACE        = var.metrics_namespace
    METRICS_TENANT_DIMENSION = tostring(var.metrics_tenant_dimension)

    # How long an Idempotency-Key's record answers repeats (idempotency.tf).
    IDEMPOTENCY_TTL_SECS = tostring(var.idempotency_ttl_seconds)

    # Empty means closed: nobody gets in.
    IDENTITY_SOURCES   = local.identity_sources
    JWT_ISSUER         = local.use_bearer_jwt || local.use_apigw_jwt ? var.jwt_issuer : null
    JWT_AUDIENCE       = local.use_bearer_jwt || local.use_apigw_jwt ? var.jwt_audience : null
    JWT_ALGORITHM      = local.use_bearer_jwt ? var.jwt_algorithm : null
    JWT_PUBLIC_KEY     = local.use_bearer_jwt && !local.use_hs256 ? var.bearer_jwt_public_key_pem : null
    JWT_JWKS           = local.use_bearer_jwt ? var.bearer_jwt_jwks : null
    CORS_ALLOW_ORIGINS = length(var.cors_allow_origins) > 0 ? join(",", var.cors_allow_origins) : null
    LEGACY_USER_ISSUER = var.legacy_user_issuer
    PLANS              = var.plans == null ? null : jsonencode(var.plans)
  }

  # The HS256 secret is merged in separately: inside the map above, its
  # sensitivity would mark the whole environment sensitive and hide every
  # change to it from `terraform plan`, even when no secret is used.
  lambda_environment = merge(
    { for k, v in local.lambda_environment_public : k => v if v != null },
    local.use_hs256 ? { JWT_HS256_SECRET = var.bearer_jwt_hs256_secret } : {},
  )

  # The migration function: the same binary, told by APP_FUNCTION to answer
  # the direct-invoke event {"action":"migrate"} instead of HTTP events, as the
  # owner role (DSQL: admin, and DSQL_RUNTIME_ROLE_ARN from migrate.tf). Its
  # statement timeout is what the function's timeout leaves after the connect
  # timeout and 5 s.
  migrate_environment = {
    APP_FUNCTION            = "migrate"
    DB_ENGINE               = local.db_engine_env
    DB_NAME                 = local.db_name
    DB_USER                 = local.migrate_db_user
    DB_AUTH                 = local.migrate_db_auth
    DB_CONNECT_TIMEOUT_SECS = tostring(var.db_connect_timeout_secs)
    DB_STATEMENT_TIMEOUT_MS = tostring(max(1, var.migrate_timeout - var.db_connect_timeout_secs - 45 - 5) * 1000)
    DB_POOL_MAX             = "1"
    LOG_LEVEL               = var.log_level
  }
}
