# The function: one `bootstrap` binary (provided.al2023 custom runtime) that
# serves every route of the API, and its log group.

locals {
  # The functions' security groups: yours, plus the one a created cluster admits.
  function_security_group_ids = concat(var.security_group_ids, aws_security_group.functions[*].id)
}

resource "aws_cloudwatch_log_group" "lambda" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, 14 days by default to keep a starter deployment cheap; set 365 or more where compliance requires a year of logs.
  # Created here, before the function, so that Terraform owns its retention
  # (and deletes it on destroy) instead of Lambda creating it on first use.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed upload through S3; this starter deploys a locally built zip. Add aws_lambda_code_signing_config when your release pipeline signs artifacts.
  #checkov:skip=CKV_AWS_116:No dead-letter queue: API Gateway invokes the function synchronously and gets the error back; the one asynchronous invocation is the scheduled cleanup (idempotency.tf), a constant event that Lambda retries and the next scheduled run repeats, so a dropped one loses nothing.
  #checkov:skip=CKV_AWS_173:Environment variables are encrypted at rest with Lambda's AWS-managed KMS key (the default); they hold no secret unless the discouraged HS256 option is used.
  function_name = local.function_name
  description   = "Multi-tenant API (Rust, ${var.architecture}) behind API Gateway ${var.name}"
  role          = aws_iam_role.lambda.arn

  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]

  filename = local.lambda_zip_path
  # null while the zip does not exist yet, so `terraform validate` and CI work
  # before scripts/package.sh has run; the precondition below stops a plan.
  source_code_hash = fileexists(local.lambda_zip_path) ? filebase64sha256(local.lambda_zip_path) : null

  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = local.reserved_concurrency

  environment {
    variables = merge(local.db_connection_env, local.lambda_environment)
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "vpc_config" {
    for_each = local.vpc_attached ? [1] : []

    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = local.function_security_group_ids
    }
  }

  tags = local.tags

  # The schema first, then the code that needs it: a deployment that adds a
  # migration updates the function only after the migration has run.
  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.lambda_xray,
    aws_lambda_invocation.migrate,
  ]

  lifecycle {
    precondition {
      condition     = fileexists(local.lambda_zip_path)
      error_message = "The deployment zip ${local.lambda_zip_path} does not exist: run scripts/package.sh first (or set lambda_zip_path)."
    }

    # A slow connect (Aurora resuming from auto-pause takes 15 to 30 s) must
    # end in the function's own 503 with time to spare; a Lambda timeout
    # throws the instance away and the next request pays a cold start.
    precondition {
      condition     = var.timeout >= var.db_connect_timeout_secs + 5
      error_message = "timeout (${var.timeout} s) must be at least db_connect_timeout_secs (${var.db_connect_timeout_secs} s) + 5 s."
    }

    precondition {
      condition     = var.db_statement_timeout_ms < var.timeout * 1000
      error_message = "db_statement_timeout_ms (${var.db_statement_timeout_ms}) must be below the function timeout (${var.timeout} s)."
    }

    # Connection math: every warm instance holds exactly one connection
    # (DB_POOL_MAX = 1), so reserved concurrency is the function's peak
    # connection count: within Aurora's max_connections, or DSQL's connections
    # per cluster (local.db_connection_budget). Unreserved (the default) and
    # DSQL's rate of new connections are warned about in checks.tf.
    precondition {
      condition     = local.reserved_concurrency == -1 || local.reserved_concurrency <= local.db_connection_budget
      error_message = "reserved_concurrent_executions (${local.reserved_concurrency}) exceeds the connection budget (${local.db_connection_budget}: ${var.db_max_connections != null ? "db_max_connections" : local.use_dsql ? "DSQL's 10,000 connections per cluster, minus 20" : "derived from cluster_max_acu"}): at full load the function would open more connections than the database allows it. Lower the concurrency or raise the budget (${local.use_dsql ? "raise the cluster's connection quota in Service Quotas, then set db_max_connections" : "and the cluster's max ACU"})."
    }

    precondition {
      condition     = !local.create_cluster || var.db_max_connections == null || try(var.db_max_connections <= local.cluster_max_connections, false)
      error_message = "db_max_connections (${coalesce(var.db_max_connections, 0)}) exceeds what the created cluster allows at cluster_max_acu = ${var.cluster_max_acu} (about ${local.cluster_max_connections}). Raise cluster_max_acu or lower db_max_connections."
    }

    precondition {
      condition     = local.create_cluster ? length(var.subnet_ids) >= 2 : (length(var.subnet_ids) > 0) == (length(var.security_group_ids) > 0)
      error_message = local.create_cluster ? "create_cluster needs subnet_ids (two or more, in different availability zones)." : "Set subnet_ids and security_group_ids together (VPC attachment), or neither."
    }

    # Which database: an Aurora PostgreSQL cluster (looked up or created), or
    # a DSQL cluster (iam.tf: by its ARN, or created; dsql.tf).
    precondition {
      condition     = !local.use_rds || ((var.db_cluster_identifier != null) != var.create_cluster)
      error_message = "db_engine = \"aurora-postgresql\": set either db_cluster_identifier (an existing cluster) or create_cluster = true, not both and not neither."
    }

    precondition {
      condition     = var.db_host == null || (local.use_dsql && !var.create_cluster)
      error_message = "db_host is only for an existing DSQL cluster (db_engine = \"dsql\" with dsql_cluster_arn), and optional there: an Aurora cluster's writer endpoint and a created DSQL cluster's endpoint are read from the cluster. Remove db_host."
    }

    # DSQL: the endpoint the tokens are signed for must be the cluster they are granted on.
    precondition {
      condition     = local.dsql_host_cluster_id == null || local.dsql_arn_cluster_id == null || (local.dsql_host_cluster_id == local.dsql_arn_cluster_id && local.dsql_host_region == local.dsql_arn_region)
      error_message = "db_host (${coalesce(var.db_host, "-")}) names another DSQL cluster than dsql_cluster_arn (${coalesce(var.dsql_cluster_arn, "-")}): the function would sign tokens for one cluster while dsql:DbConnect is granted on the other. Remove db_host (the endpoint is derived from the ARN) or correct one of them."
    }

    precondition {
      condition     = var.db_auth == null || var.db_auth == local.db_auth
      error_message = "db_auth = \"${coalesce(var.db_auth, "-")}\" contradicts db_engine = \"${var.db_engine}\". db_auth is replaced by db_engine: remove db_auth and set db_engine = \"${var.db_auth == "dsql" ? "dsql" : "aurora-postgresql"}\"."
    }

    # DSQL has one database, postgres, and the DSQL migrations create and map
    # app_runtime: nothing else would let the API in.
    precondition {
      condition     = !local.use_dsql || (var.db_name == null && var.db_user == "app_runtime" && !var.bootstrap_database)
      error_message = "db_engine = \"dsql\": leave db_name unset (a DSQL cluster has one database, postgres), keep db_user = \"app_runtime\" (the DSQL migrations create that role and map it to this function's IAM role) and bootstrap_database = false (DSQL needs no set-up through the RDS Data API)."
    }

    # IAM tokens are signed for a region, and rds-db / dsql ARNs name one.
    precondition {
      condition     = local.db_region == null || local.db_region == local.region
      error_message = "The database is in ${coalesce(local.db_region, "-")}, but the function is deployed to ${local.region}: IAM database tokens and the rds-db:connect / dsql:DbConnect ARNs are regional, so the function must run in the database's region. Set aws_region = \"${coalesce(local.db_region, "-")}\"."
    }

    precondition {
      condition     = !local.use_bearer_jwt || var.bearer_jwt_jwks != null || (var.jwt_algorithm == "HS256" ? nonsensitive(var.bearer_jwt_hs256_secret != null) : var.bearer_jwt_public_key_pem != null)
      error_message = "jwt_algorithm ${var.jwt_algorithm} needs ${var.jwt_algorithm == "HS256" ? "bearer_jwt_hs256_secret" : "bearer_jwt_public_key_pem"}."
    }

    # The function refuses bearer tokens without an issuer and audience to check.
    precondition {
      condition     = !local.use_bearer_jwt || (var.jwt_issuer != null && var.jwt_audience != null)
      error_message = "The function verifies bearer tokens (bearer_jwt_jwks / bearer_jwt_public_key_pem / bearer_jwt_hs256_secret): set jwt_issuer and jwt_audience too, the iss and aud every token must carry."
    }

    precondition {
      condition     = (var.jwt_issuer == null) == (var.jwt_audience == null)
      error_message = "Set jwt_issuer and jwt_audience together: a token is only accepted for a known issuer and audience."
    }
  }
}
