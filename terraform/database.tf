# Where the database is: an existing Aurora PostgreSQL cluster, looked up by
# its identifier (IAM authentication must be on), a cluster created in
# cluster.tf, or an Aurora DSQL cluster (dsql.tf). Everything downstream
# (the functions' DB_HOST / DB_PORT, the rds-db:connect ARNs, the region
# check) reads the locals at the bottom.

data "aws_rds_cluster" "this" {
  count = local.lookup_cluster ? 1 : 0

  cluster_identifier = local.cluster_lookup_id

  lifecycle {
    precondition {
      condition     = var.db_cluster_identifier != null
      error_message = "db_engine = \"aurora-postgresql\" needs the cluster: set db_cluster_identifier to an existing Aurora PostgreSQL cluster, or create_cluster = true to create one."
    }

    # IAM tokens are signed for a region and rds-db:connect ARNs name one: the
    # database must be where the function runs. A cluster ARN says where it is.
    precondition {
      condition     = local.cluster_arn_region == null || local.cluster_arn_region == data.aws_region.current.region
      error_message = "The cluster ${coalesce(var.db_cluster_identifier, "-")} is in ${coalesce(local.cluster_arn_region, "-")}, but the function is deployed to ${data.aws_region.current.region}: IAM database tokens and rds-db:connect ARNs are regional, so the function must run in the cluster's region. Set aws_region = \"${coalesce(local.cluster_arn_region, "-")}\"."
    }

    postcondition {
      condition     = self.iam_database_authentication_enabled == true
      error_message = "IAM database authentication is not enabled on cluster ${self.cluster_identifier}, so the function's tokens would be refused. Enable it: aws rds modify-db-cluster --db-cluster-identifier ${self.cluster_identifier} --enable-iam-database-authentication --apply-immediately"
    }

    postcondition {
      condition     = self.engine == "aurora-postgresql"
      error_message = "Cluster ${self.cluster_identifier} runs ${self.engine}; the API needs Aurora PostgreSQL (aurora-postgresql)."
    }

    postcondition {
      condition     = split(":", self.arn)[3] == data.aws_region.current.region
      error_message = "Cluster ${self.cluster_identifier} is in ${split(":", self.arn)[3]}, not in the function's region ${data.aws_region.current.region}: IAM database tokens are regional."
    }
  }
}

locals {
  region = data.aws_region.current.region

  # The cluster, created or looked up (null for DSQL).
  cluster = (
    local.create_cluster ? {
      identifier  = aws_rds_cluster.this[0].cluster_identifier
      arn         = aws_rds_cluster.this[0].arn
      endpoint    = aws_rds_cluster.this[0].endpoint
      port        = aws_rds_cluster.this[0].port
      resource_id = aws_rds_cluster.this[0].cluster_resource_id
    } :
    local.lookup_cluster ? {
      identifier  = data.aws_rds_cluster.this[0].cluster_identifier
      arn         = data.aws_rds_cluster.this[0].arn
      endpoint    = data.aws_rds_cluster.this[0].endpoint
      port        = data.aws_rds_cluster.this[0].port
      resource_id = data.aws_rds_cluster.this[0].cluster_resource_id
    } : null
  )

  db_host = local.use_rds ? local.cluster.endpoint : local.dsql_endpoint
  db_port = local.use_rds ? local.cluster.port : var.db_port

  # The functions' connection settings that come from the cluster.
  db_connection_env = {
    DB_HOST = local.db_host
    DB_PORT = tostring(local.db_port)
  }

  # Where the database is, as far as its names say: the cluster's ARN, or the
  # DSQL endpoint (<id>.dsql.<region>.on.aws) and cluster ARN (a created DSQL
  # cluster is in the deployment's region; lambda.tf checks that the endpoint
  # and the ARN agree).
  db_region = (
    local.use_rds ? split(":", local.cluster.arn)[3] :
    try(coalesce(local.dsql_host_region, local.dsql_arn_region), null)
  )

  # IAM identity of a database user on this cluster:
  #   arn:aws:rds-db:<region>:<account>:dbuser:<DbClusterResourceId>/<db user>
  # "*" instead of the resource ID only by explicit opt-in (rds_iam_connect_any_cluster).
  rds_dbuser_prefix = "arn:${data.aws_partition.current.partition}:rds-db:${local.region}:${data.aws_caller_identity.current.account_id}:dbuser"
  rds_cluster_part  = var.rds_iam_connect_any_cluster ? "*" : try(local.cluster.resource_id, "none")
  rds_runtime_arn   = "${local.rds_dbuser_prefix}:${local.rds_cluster_part}/${var.db_user}"
  rds_owner_arn     = "${local.rds_dbuser_prefix}:${try(local.cluster.resource_id, "none")}/${local.db_owner_user}"
}
