# Migrations without a bastion. An Aurora cluster is reachable only inside
# its VPC, so the migrations run there: a second function from the same
# package (APP_FUNCTION=migrate), logging in as the owner role app_owner, that
# answers the direct-invoke event {"action":"migrate"} (API Gateway cannot
# reach it; the API function refuses that event) with
#   {"applied": ["0002_x.sql", ...], "already_applied": N}
# and fails the invocation, naming the migration, when one fails. On Aurora
# DSQL the same function logs in as admin (DB_AUTH=dsql-admin), applies
# migrations/dsql/, and then maps app_runtime to the API function's role
# (AWS IAM GRANT app_runtime TO '<DSQL_RUNTIME_ROLE_ARN>'); it needs no VPC.
#
# `terraform apply` invokes it whenever the engine's migrations change (and
# when the package changes, since the migrations are compiled into it), after
# the one-time set-up of an Aurora database and its roles, and before it
# updates the API function. A failing migration fails the apply with its
# message.

locals {
  migrations_dir = local.use_dsql ? "${path.module}/../migrations/dsql" : "${path.module}/../migrations"
  # The migrations' names and contents (not migrations/bootstrap/: the roles
  # are created once, by scripts/bootstrap-db.sh).
  migrations_hash = sha256(join("\n", [
    for f in sort(fileset(local.migrations_dir, "*.sql")) : "${f} ${filesha256("${local.migrations_dir}/${f}")}"
  ]))
  package_hash = fileexists(local.lambda_zip_path) ? filebase64sha256(local.lambda_zip_path) : ""

  # DSQL: the IAM role the migrations map app_runtime to (the API function's).
  migrate_dsql_environment = local.use_dsql ? { DSQL_RUNTIME_ROLE_ARN = aws_iam_role.lambda.arn } : {}
}

resource "aws_cloudwatch_log_group" "migrate" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, 14 days by default to keep a starter deployment cheap; set 365 or more where compliance requires a year of logs.
  name              = "/aws/lambda/${local.migrate_function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "migrate" {
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed upload through S3; this starter deploys a locally built zip. Add aws_lambda_code_signing_config when your release pipeline signs artifacts.
  #checkov:skip=CKV_AWS_116:No dead-letter queue: only `terraform apply` invokes this function, synchronously, and gets the error back.
  #checkov:skip=CKV_AWS_173:Environment variables are encrypted at rest with Lambda's AWS-managed KMS key (the default); they hold no secret.
  #checkov:skip=CKV_AWS_115:No reserved concurrency: only `terraform apply` (or an operator, by hand) invokes it, one run at a time; reserving would take from the account's pool for a function that is idle almost always.
  function_name = local.migrate_function_name
  description   = "Database migrations of ${var.name} (Rust, ${var.architecture}): invoked by terraform apply with {\"action\":\"migrate\"}"
  role          = aws_iam_role.migrate.arn

  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]

  filename         = local.lambda_zip_path
  source_code_hash = fileexists(local.lambda_zip_path) ? filebase64sha256(local.lambda_zip_path) : null

  memory_size = var.memory_size
  timeout     = var.migrate_timeout

  environment {
    variables = merge(local.db_connection_env, local.migrate_environment, local.migrate_dsql_environment)
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

  depends_on = [
    aws_cloudwatch_log_group.migrate,
    aws_iam_role_policy.migrate,
    aws_iam_role_policy_attachment.migrate_xray,
  ]

  lifecycle {
    precondition {
      condition     = fileexists(local.lambda_zip_path)
      error_message = "The deployment zip ${local.lambda_zip_path} does not exist: run scripts/package.sh first (or set lambda_zip_path)."
    }

    # The connection (an auto-paused cluster resumes within the connect
    # timeout), the function's retries of a refused login (up to 45 s, while
    # IAM propagates a new policy: LOGIN_RETRY_BUDGET in
    # crates/lambda/src/migration.rs), and then at least 30 s per statement.
    precondition {
      condition     = var.migrate_timeout >= var.db_connect_timeout_secs + 80
      error_message = "migrate_timeout (${var.migrate_timeout} s) must be at least db_connect_timeout_secs (${var.db_connect_timeout_secs} s) + 80 s: the connection, up to 45 s of retried logins while IAM propagates, then 30 s or more for each statement."
    }
  }
}

# Once per cluster: the database and the roles app_owner and app_runtime,
# created as the master user through the RDS Data API (the cluster's HTTP
# endpoint and its RDS-managed master secret), from where terraform runs, with
# no network path to the cluster. Always for a created cluster; for an existing
# one when bootstrap_database = true (or run scripts/bootstrap-db.sh yourself).
resource "terraform_data" "bootstrap_database" {
  count = local.bootstrap_database ? 1 : 0

  # Again when the idle session timeout changes: the script is idempotent,
  # and sets it as app_runtime's default.
  triggers_replace = [local.cluster.resource_id, local.db_name, var.db_idle_session_timeout_seconds]

  provisioner "local-exec" {
    interpreter = ["bash"]
    command     = "${path.module}/../scripts/bootstrap-db.sh"
    environment = {
      BOOTSTRAP_CLUSTER = local.cluster.identifier
      BOOTSTRAP_DB_NAME = local.db_name
      AWS_REGION        = local.region
      # ALTER ROLE app_runtime SET idle_session_timeout = '<N>s'
      BOOTSTRAP_IDLE_SESSION_TIMEOUT_SECS = tostring(var.db_idle_session_timeout_seconds)
      # What to do when the cluster's Data API is off: a created cluster's
      # follows cluster_data_api (turning it on by hand would be undone by the
      # next apply); an existing cluster's is yours (the script says the command).
      BOOTSTRAP_DATA_API_FIX = local.create_cluster ? "set cluster_data_api = true (terraform.tfvars) and apply again; set it back to false once the set-up has run" : ""
    }
  }

  depends_on = [aws_rds_cluster_instance.writer]

  lifecycle {
    precondition {
      condition     = var.db_user == "app_runtime"
      error_message = "scripts/bootstrap-db.sh creates the roles app_owner and app_runtime (migrations/bootstrap/roles.sql); db_user = \"${var.db_user}\" would be a role it does not create. Keep db_user = \"app_runtime\", or create the database and roles yourself and set bootstrap_database = false."
    }
  }
}

resource "aws_lambda_invocation" "migrate" {
  count = local.run_migrations ? 1 : 0

  function_name = aws_lambda_function.migrate.function_name
  input         = jsonencode({ action = "migrate" })

  # A change of any invokes again (the migrations are compiled into the
  # package: a package built before a migration was added would otherwise
  # record the new hash without applying it). A second run is a no-op.
  # The API function's role too: on DSQL the migrations map app_runtime to it
  # (AWS IAM GRANT), so a replaced role (a new ARN, or the same name
  # recreated: a new unique id) must be mapped again; on Aurora the run
  # finds nothing to do.
  triggers = {
    migrations      = local.migrations_hash
    package         = local.package_hash
    runtime_role    = aws_iam_role.lambda.arn
    runtime_role_id = aws_iam_role.lambda.unique_id
  }

  # The roles first (Aurora), and the policy that lets the migration function
  # log in. The function already waits for that policy, and this only
  # restates it: IAM is eventually consistent, so a policy created moments
  # earlier can still be refused for a while
  # (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
  # Terraform cannot wait for that (the time provider, for a sleep, is not
  # worth a fixed guess); the migration function retries a login refused
  # right after deployment within its invocation (crates/lambda/src/migration.rs).
  depends_on = [
    terraform_data.bootstrap_database,
    aws_iam_role_policy.migrate,
    aws_iam_role_policy_attachment.migrate_xray,
  ]

  lifecycle {
    # A function error (a failed migration) already fails the apply with its
    # message; this catches a package that does not know the event.
    postcondition {
      condition     = can(tolist(jsondecode(self.result).applied)) && can(tonumber(jsondecode(self.result).already_applied))
      error_message = "The migration function answered ${self.result}, not {\"applied\": [...], \"already_applied\": N}: is dist/lambda.zip built from a version that knows APP_FUNCTION=migrate?"
    }
  }
}
