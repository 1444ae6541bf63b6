# The function's execution role: CloudWatch Logs, optional VPC networking and
# X-Ray, and the one database permission it needs: log in as var.db_user.

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

resource "aws_iam_role" "lambda" {
  name               = "${var.name}-lambda"
  description        = "Execution role of the ${var.name} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role_policy_attachment" "lambda_basic_execution" {
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

resource "aws_iam_role_policy_attachment" "lambda_vpc_access" {
  count = local.vpc_attached ? 1 : 0

  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "lambda_xray" {
  count = var.tracing_mode == "Active" ? 1 : 0

  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

locals {
  # The IAM identity of one database user on one cluster:
  #   arn:aws:rds-db:<region>:<account>:dbuser:<DbClusterResourceId>/<db user>
  # Without a cluster resource id the cluster part becomes "*", which lets the
  # function log in as var.db_user on every Aurora cluster in this account and
  # region (checks.tf warns about it).
  rds_dbuser_arn = "arn:${data.aws_partition.current.partition}:rds-db:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:dbuser:${coalesce(var.db_cluster_resource_id, "*")}/${var.db_user}"
}

data "aws_iam_policy_document" "db_connect" {
  # Aurora PostgreSQL with IAM database authentication.
  dynamic "statement" {
    for_each = var.db_auth == "iam" ? [1] : []

    content {
      sid       = "RdsIamConnect"
      effect    = "Allow"
      actions   = ["rds-db:connect"]
      resources = [local.rds_dbuser_arn]
    }
  }

  # Aurora DSQL: DbConnect (not DbConnectAdmin) logs in as a custom role.
  dynamic "statement" {
    for_each = var.db_auth == "dsql" ? [1] : []

    content {
      sid       = "DsqlConnect"
      effect    = "Allow"
      actions   = ["dsql:DbConnect"]
      resources = [var.dsql_cluster_arn]
    }
  }

  lifecycle {
    precondition {
      condition     = var.db_auth != "dsql" || var.dsql_cluster_arn != null
      error_message = "db_auth = \"dsql\" needs dsql_cluster_arn: the cluster that dsql:DbConnect is granted on."
    }
  }
}

resource "aws_iam_role_policy" "db_connect" {
  name   = "db-connect"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.db_connect.json
}
