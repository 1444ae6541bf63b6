# The execution roles: one for the API function, one for the migration
# function. Each may write to its own log group only, manage its network
# interfaces when attached to a VPC, send X-Ray traces, and log in to the
# database as one user: the API as var.db_user (Aurora: rds-db:connect) or
# app_runtime (DSQL: dsql:DbConnect), the migrations as app_owner (Aurora) or
# admin (DSQL: dsql:DbConnectAdmin), on this cluster only.

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# IAM role names are unique in the account, whatever the Region
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html):
# the Region in the name lets the same `name` deploy to a second Region
# instead of failing with EntityAlreadyExists. At most 64 characters: with
# `name` at its 40 and the longest Region name (15), <name>-migrate-<region>
# is exactly 64; the preconditions catch a longer Region name at plan time.
locals {
  lambda_role_name  = "${var.name}-lambda-${local.region}"
  migrate_role_name = "${var.name}-migrate-${local.region}"
}

resource "aws_iam_role" "lambda" {
  name                 = local.lambda_role_name
  description          = "Execution role of the ${var.name} Lambda function"
  path                 = var.iam_role_path
  permissions_boundary = var.iam_permissions_boundary_arn
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  tags                 = local.tags

  lifecycle {
    precondition {
      condition     = length(local.lambda_role_name) <= 64
      error_message = "The IAM role name ${local.lambda_role_name} is ${length(local.lambda_role_name)} characters; IAM takes at most 64. Shorten name."
    }
  }
}

resource "aws_iam_role_policy_attachment" "lambda_xray" {
  count = var.tracing_mode == "Active" ? 1 : 0

  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

locals {
  # What Lambda needs to attach a function to subnets (the part of
  # AWSLambdaVPCAccessExecutionRole that is not its logs:* on every log group).
  # EC2 cannot scope these to resources that do not exist yet.
  vpc_eni_actions = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
  ]
}

data "aws_iam_policy_document" "lambda" {
  #checkov:skip=CKV_AWS_111:The EC2 network-interface actions Lambda needs for VPC attachment cannot be scoped to resources (the interfaces do not exist yet); they are the ones AWSLambdaVPCAccessExecutionRole grants on *, without its logs:*.
  #checkov:skip=CKV_AWS_356:Same: ec2:Describe* and the interface actions of VPC attachment take no resource-level scope.
  # Logs: the function's own log group, created by Terraform (no CreateLogGroup).
  statement {
    sid       = "OwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.lambda.arn, "${aws_cloudwatch_log_group.lambda.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.vpc_attached ? [1] : []

    content {
      sid       = "VpcNetworkInterfaces"
      effect    = "Allow"
      actions   = local.vpc_eni_actions
      resources = ["*"]
    }
  }

  # Aurora PostgreSQL with IAM database authentication: log in as var.db_user
  # on this cluster only (dbuser:* by explicit opt-in, checks.tf warns).
  dynamic "statement" {
    for_each = local.use_rds ? [1] : []

    content {
      sid       = "RdsIamConnect"
      effect    = "Allow"
      actions   = ["rds-db:connect"]
      resources = [local.rds_runtime_arn]
    }
  }

  # Silo tenants on other Aurora clusters: the runtime user there, on each
  # listed cluster only (var.dedicated_database_users; none by default).
  dynamic "statement" {
    for_each = local.use_rds && length(var.dedicated_database_users) > 0 ? [1] : []

    content {
      sid     = "RdsIamConnectDedicated"
      effect  = "Allow"
      actions = ["rds-db:connect"]
      resources = [
        for d in var.dedicated_database_users : "${local.rds_dbuser_prefix}:${d.cluster_resource_id}/${d.user}"
      ]
    }
  }

  # Aurora DSQL: DbConnect (never DbConnectAdmin) logs in as a custom role,
  # app_runtime, on this one cluster.
  dynamic "statement" {
    for_each = local.use_dsql ? [1] : []

    content {
      sid       = "DsqlConnect"
      effect    = "Allow"
      actions   = ["dsql:DbConnect"]
      resources = [local.dsql_cluster_arn]
    }
  }

  lifecycle {
    # One cluster: an existing one by its ARN, or a created one.
    precondition {
      condition     = !local.use_dsql || ((var.dsql_cluster_arn != null) != var.create_cluster)
      error_message = "db_engine = \"dsql\": set either dsql_cluster_arn (an existing cluster, arn:aws:dsql:<region>:<account>:cluster/<id>) or create_cluster = true, not both and not neither: dsql:DbConnect is granted on that cluster only."
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "logs-network-database"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# --- The migration function -----------------------------------------------

resource "aws_iam_role" "migrate" {
  name                 = local.migrate_role_name
  description          = "Execution role of the ${var.name}-migrate Lambda function (database migrations as ${local.migrate_db_user})"
  path                 = var.iam_role_path
  permissions_boundary = var.iam_permissions_boundary_arn
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  tags                 = local.tags

  lifecycle {
    precondition {
      condition     = length(local.migrate_role_name) <= 64
      error_message = "The IAM role name ${local.migrate_role_name} is ${length(local.migrate_role_name)} characters; IAM takes at most 64. Shorten name."
    }
  }
}

resource "aws_iam_role_policy_attachment" "migrate_xray" {
  count = var.tracing_mode == "Active" ? 1 : 0

  role       = aws_iam_role.migrate.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

data "aws_iam_policy_document" "migrate" {
  #checkov:skip=CKV_AWS_111:The EC2 network-interface actions Lambda needs for VPC attachment cannot be scoped to resources (the interfaces do not exist yet); they are the ones AWSLambdaVPCAccessExecutionRole grants on *, without its logs:*.
  #checkov:skip=CKV_AWS_356:Same: ec2:Describe* and the interface actions of VPC attachment take no resource-level scope.
  statement {
    sid       = "OwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.migrate.arn, "${aws_cloudwatch_log_group.migrate.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.vpc_attached ? [1] : []

    content {
      sid       = "VpcNetworkInterfaces"
      effect    = "Allow"
      actions   = local.vpc_eni_actions
      resources = ["*"]
    }
  }

  # Aurora: the owner role, on this cluster only: never a wildcard.
  dynamic "statement" {
    for_each = local.use_rds ? [1] : []

    content {
      sid       = "RdsIamConnectAsOwner"
      effect    = "Allow"
      actions   = ["rds-db:connect"]
      resources = [local.rds_owner_arn]
    }
  }

  # DSQL: admin (DbConnectAdmin), on this cluster only: the migrations create
  # app_runtime and map it to the API function's role.
  dynamic "statement" {
    for_each = local.use_dsql ? [1] : []

    content {
      sid       = "DsqlConnectAsAdmin"
      effect    = "Allow"
      actions   = ["dsql:DbConnectAdmin"]
      resources = [local.dsql_cluster_arn]
    }
  }
}

resource "aws_iam_role_policy" "migrate" {
  name   = "logs-network-database-owner"
  role   = aws_iam_role.migrate.id
  policy = data.aws_iam_policy_document.migrate.json
}
