# Aurora DSQL (db_engine = "dsql"): a cluster created here (create_cluster),
# or an existing one named by dsql_cluster_arn. Nothing here needs a VPC: the
# endpoint <id>.dsql.<region>.on.aws is public, and every login is an IAM
# token over TLS: the API function's role may DbConnect (as app_runtime) and
# the migration function's role DbConnectAdmin (as admin), on this cluster's
# ARN only (iam.tf). The migrations create app_runtime and map it to the API
# function's role with AWS IAM GRANT (migrate.tf passes DSQL_RUNTIME_ROLE_ARN).

resource "aws_dsql_cluster" "this" {
  count = local.create_dsql_cluster ? 1 : 0

  # A single-Region cluster. Deletion protection is on unless
  # cluster_deletion_protection = false (set, apply, then destroy). DSQL
  # takes no final snapshot.
  deletion_protection_enabled = var.cluster_deletion_protection
  # null: DSQL's AWS-owned key.
  kms_encryption_key = var.cluster_kms_key_arn

  # DSQL clusters have no name of their own: the console shows the Name tag.
  tags = merge(local.tags, { Name = var.name })
}

locals {
  # The one cluster every DSQL grant and the endpoint name.
  dsql_cluster_arn = local.create_dsql_cluster ? aws_dsql_cluster.this[0].arn : var.dsql_cluster_arn
  dsql_cluster_id  = local.create_dsql_cluster ? aws_dsql_cluster.this[0].identifier : local.dsql_arn_cluster_id

  # DB_HOST: db_host when given (an existing cluster only), else the
  # cluster's endpoint in the deployment's region (lambda.tf checks that an
  # existing cluster's ARN names that region). null while nothing names a
  # cluster: the preconditions in lambda.tf and iam.tf say what is missing.
  dsql_endpoint = var.db_host != null ? var.db_host : try("${local.dsql_cluster_id}.dsql.${local.region}.on.aws", null)
}
