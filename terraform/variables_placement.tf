# Silo tenants (docs/silo.md): tenants moved to dedicated databases with
# scripts/tenant.sh. A dedicated database in this cluster needs nothing here:
# the API's rds-db:connect grant names the cluster and the user, not the
# database. One on another Aurora cluster needs that cluster's resource id
# below, so that the API may log in there too.

variable "dedicated_database_users" {
  description = "Dedicated databases of silo tenants on other Aurora clusters (docs/silo.md): for each, the cluster's resource id (\"cluster-\" and 26 letters and digits: `aws rds describe-db-clusters --query 'DBClusters[].DbClusterResourceId'`) and the runtime user there (default app_runtime). The API function gets rds-db:connect for exactly these (no wildcards). Databases in this deployment's own cluster need no entry."
  type = list(object({
    cluster_resource_id = string
    user                = optional(string, "app_runtime")
  }))
  default  = []
  nullable = false

  validation {
    condition = alltrue([
      for d in var.dedicated_database_users :
      can(regex("^cluster-[A-Z0-9]{26}$", d.cluster_resource_id)) && can(regex("^[a-z_][a-z0-9_]{0,62}$", d.user))
    ])
    error_message = "Each dedicated_database_users entry needs a cluster_resource_id like cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ (\"cluster-\" and 26 upper-case letters and digits) and a user that is a lower-case identifier; wildcards are not allowed."
  }

  validation {
    condition     = length(var.dedicated_database_users) == length(distinct(var.dedicated_database_users))
    error_message = "dedicated_database_users lists an entry twice."
  }
}

variable "dedicated_database_security_group_ids" {
  description = "With create_cluster: the security groups of the clusters in dedicated_database_users (same VPC, or a peered one), which the functions' security group lets them reach on TCP 5432; it otherwise lets them reach this deployment's cluster only, and connections to silo tenants elsewhere time out. Each of those groups must admit TCP 5432 from the functions' group (terraform output functions_security_group_id). With an existing cluster the functions' groups are yours (security_group_ids): give them the egress there."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.dedicated_database_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))]) && length(var.dedicated_database_security_group_ids) == length(distinct(var.dedicated_database_security_group_ids))
    error_message = "dedicated_database_security_group_ids must be distinct security group IDs like \"sg-0123456789abcdef0\"."
  }
}

variable "dedicated_database_cidr_blocks" {
  description = "With create_cluster: IPv4 CIDR blocks of the clusters in dedicated_database_users that dedicated_database_security_group_ids cannot name (another VPC reached without group references), which the functions may reach on TCP 5432. Network addresses, not 0.0.0.0/0."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition = alltrue([
      for c in var.dedicated_database_cidr_blocks :
      can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c)) && try(cidrhost(c, 0) == split("/", c)[0], false) && c != "0.0.0.0/0"
    ]) && length(var.dedicated_database_cidr_blocks) == length(distinct(var.dedicated_database_cidr_blocks))
    error_message = "dedicated_database_cidr_blocks must be distinct IPv4 network addresses with a prefix length, like \"10.1.0.0/16\" (not 0.0.0.0/0)."
  }
}

variable "placement_max_connections" {
  description = "DB_PLACEMENT_MAX_CONNECTIONS: open connections to dedicated databases (silo tenants) per Lambda instance, beside its connection to this cluster; the least recently used idle one is closed to make room. Each is a slot of that database's max_connections: count reserved_concurrent_executions x this per dedicated cluster (docs/silo.md)."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.placement_max_connections >= 1 && var.placement_max_connections <= 16 && floor(var.placement_max_connections) == var.placement_max_connections
    error_message = "placement_max_connections must be a whole number from 1 to 16."
  }
}
