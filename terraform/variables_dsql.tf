# Inputs for db_engine = "dsql": an existing Aurora DSQL cluster (its ARN,
# and optionally its endpoint); a created one needs none of these
# (create_cluster, cluster_deletion_protection and cluster_kms_key_arn in
# variables_database.tf apply to both engines).

variable "dsql_cluster_arn" {
  description = "db_engine = \"dsql\" with an existing cluster: its ARN (arn:aws:dsql:<region>:<account>:cluster/<id>). The API function gets dsql:DbConnect and the migration function dsql:DbConnectAdmin on this ARN and nothing else, and the endpoint is derived from it (<id>.dsql.<region>.on.aws) unless db_host is set. Leave null with create_cluster = true."
  type        = string
  default     = null

  validation {
    # No wildcards: a grant on cluster/* would let the function log in to every cluster.
    condition     = var.dsql_cluster_arn == null || can(regex("^arn:aws[a-z-]*:dsql:[a-z0-9-]+:[0-9]{12}:cluster/[a-z0-9]+$", var.dsql_cluster_arn))
    error_message = "dsql_cluster_arn must be one cluster's ARN, without wildcards, like \"arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrstuvwxyz\"."
  }
}

variable "db_host" {
  description = "db_engine = \"dsql\" with an existing cluster, optional: DB_HOST, the name the functions connect to and sign their tokens for. null derives <id>.dsql.<region>.on.aws from dsql_cluster_arn; an endpoint of that form given here must name the same cluster (plan checks). Leave null with a created cluster and with Aurora PostgreSQL, where the host is the cluster's writer endpoint."
  type        = string
  default     = null

  validation {
    condition = var.db_host == null || try(
      length(var.db_host) <= 253
      && can(regex("^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$", var.db_host)),
      false
    )
    error_message = "db_host must be a DNS host name without scheme, port or path, e.g. \"abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws\"."
  }

  validation {
    condition     = var.db_host == null || !can(regex("\\.cluster-ro-", var.db_host))
    error_message = "db_host is a cluster's reader endpoint (cluster-ro-); the function writes. For Aurora PostgreSQL set db_cluster_identifier instead of db_host."
  }
}

variable "db_port" {
  description = "db_engine = \"dsql\": DB_PORT of the DSQL endpoint (5432). With aurora-postgresql the port comes from the cluster (the lookup, or 5432 for a created cluster)."
  type        = number
  default     = 5432
  nullable    = false

  validation {
    condition     = var.db_port >= 1 && var.db_port <= 65535 && floor(var.db_port) == var.db_port
    error_message = "db_port must be a whole number from 1 to 65535."
  }
}
