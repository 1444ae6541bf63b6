# Inputs: the database. db_engine picks Aurora PostgreSQL or Aurora DSQL;
# either an existing cluster (db_cluster_identifier, or dsql_cluster_arn in
# variables_dsql.tf) or one Terraform creates (create_cluster).

variable "db_engine" {
  description = "The database: \"aurora-postgresql\" (Aurora PostgreSQL with IAM database authentication; an existing cluster, db_cluster_identifier, or one Terraform creates, create_cluster) or \"dsql\" (Aurora DSQL; an existing cluster, dsql_cluster_arn, or one Terraform creates, create_cluster). It sets the functions' DB_ENGINE (postgres or dsql) and DB_AUTH: iam for both functions on Aurora; on DSQL dsql (a DbConnect token, as app_runtime) for the API and dsql-admin (a DbConnectAdmin token, as admin) for the migrations."
  type        = string
  default     = "aurora-postgresql"
  nullable    = false

  validation {
    condition     = contains(["aurora-postgresql", "dsql"], var.db_engine)
    error_message = "db_engine must be \"aurora-postgresql\" or \"dsql\"."
  }
}

variable "db_auth" {
  description = "Deprecated, leave null: db_engine sets DB_AUTH now (aurora-postgresql: iam; dsql: dsql for the API, dsql-admin for the migrations). Kept so that a configuration written for it fails with a message instead of deploying the other engine: a value must agree with db_engine (\"iam\" with aurora-postgresql, \"dsql\" with dsql), and plan warns that it is redundant."
  type        = string
  default     = null

  validation {
    condition     = var.db_auth == null || contains(["iam", "dsql"], coalesce(var.db_auth, "-"))
    error_message = "db_auth is deprecated: remove it and set db_engine = \"aurora-postgresql\" or db_engine = \"dsql\" (a deployed function never uses a password)."
  }
}

variable "db_cluster_identifier" {
  description = "db_engine = \"aurora-postgresql\" with an existing cluster: its DB cluster identifier (e.g. \"my-aurora-cluster\") or ARN. Terraform looks the cluster up (data.aws_rds_cluster) in the deployment's region for its writer endpoint, port and resource ID, and refuses a cluster without IAM database authentication. Leave null with create_cluster = true."
  type        = string
  default     = null

  validation {
    condition = var.db_cluster_identifier == null || can(regex("^([a-z][a-z0-9-]{0,62}|arn:aws[a-z-]*:rds:[a-z0-9-]+:[0-9]{12}:cluster:[a-z][a-z0-9-]{0,62})$", var.db_cluster_identifier)) && !can(regex("(--|-$)", var.db_cluster_identifier))
    # Identifiers are stored in lower case; an upper-case one would only fail at the lookup.
    error_message = "db_cluster_identifier must be a DB cluster identifier (lower-case letters, digits and single hyphens, starting with a letter, at most 63 characters) or a cluster ARN (arn:aws:rds:<region>:<account>:cluster:<identifier>)."
  }
}

variable "rds_iam_connect_any_cluster" {
  description = "db_engine = \"aurora-postgresql\" only: explicit opt-in to grant rds-db:connect on dbuser:*/<db user>: every IAM-enabled cluster in the account and region, not only this one. Only for setups where the cluster's resource ID cannot be known at plan time. Off: the grant names this cluster's resource ID."
  type        = bool
  default     = false
  nullable    = false
}

variable "db_name" {
  description = "DB_NAME with db_engine = \"aurora-postgresql\": the database the functions connect to (a created cluster starts with it; otherwise scripts/bootstrap-db.sh creates it). null means \"app\". With dsql leave it null: a DSQL cluster has one database, postgres, and the functions get DB_NAME=postgres."
  type        = string
  default     = null

  validation {
    # PostgreSQL folds unquoted identifiers to lower case and `$` is not portable:
    # keep to names that mean the same quoted and unquoted.
    condition     = var.db_name == null || try(can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name)) && !contains(["postgres", "template0", "template1", "rdsadmin"], var.db_name), false)
    error_message = "db_name must be a lower-case PostgreSQL identifier (a-z, 0-9, '_', not starting with a digit, at most 63 characters) other than postgres, template0, template1 and rdsadmin."
  }
}

variable "db_user" {
  description = "DB_USER: the database role the API function logs in as. Aurora PostgreSQL: a role with rds_iam granted (scripts/bootstrap-db.sh creates app_runtime that way), also the user in the function's rds-db:connect ARN; the migration function logs in as app_owner. Aurora DSQL: must stay app_runtime, which the DSQL migrations create and map to the API function's IAM role (AWS IAM GRANT); the migration function logs in as admin."
  type        = string
  default     = "app_runtime"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_user)) && !contains(["app_owner", "admin"], var.db_user) && !startswith(var.db_user, "rds")
    error_message = "db_user must be a lower-case PostgreSQL identifier (a-z, 0-9, '_', at most 63 characters), not app_owner or admin (the owner, or DSQL's admin, runs migrations, never the API) and not an rds* role."
  }
}

variable "db_connect_timeout_secs" {
  description = "DB_CONNECT_TIMEOUT_SECS: how long a request waits for a database connection (including an Aurora resume from auto-pause, 15 to 30 s) before answering 503. Must be at least 5 s below timeout."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.db_connect_timeout_secs >= 1 && var.db_connect_timeout_secs <= 895 && floor(var.db_connect_timeout_secs) == var.db_connect_timeout_secs
    error_message = "db_connect_timeout_secs must be a whole number of seconds from 1 to 895."
  }
}

variable "db_statement_timeout_ms" {
  description = "DB_STATEMENT_TIMEOUT_MS: PostgreSQL statement_timeout of the function's sessions, in milliseconds. Must stay below the function timeout."
  type        = number
  default     = 10000
  nullable    = false

  validation {
    condition     = var.db_statement_timeout_ms >= 1 && var.db_statement_timeout_ms <= 900000 && floor(var.db_statement_timeout_ms) == var.db_statement_timeout_ms
    error_message = "db_statement_timeout_ms must be a whole number of milliseconds from 1 to 900000."
  }
}

variable "db_idle_session_timeout_seconds" {
  description = "DB_IDLE_SESSION_TIMEOUT_SECS: PostgreSQL idle_session_timeout of the API function's sessions, in seconds, and the default of the app_runtime role (scripts/bootstrap-db.sh sets it). A warm Lambda instance keeps its connection open while it is frozen between requests, and Aurora Serverless v2 at 0 ACU cannot auto-pause while any connection is open: the server closes a session idle this long, so the cluster can pause, and the next request on that instance reconnects (TLS, the cached IAM token, login, prepared statements) transparently. 0 disables it (idle instances then hold their connections until Lambda retires them). Needs PostgreSQL 14 or later."
  type        = number
  default     = 600
  nullable    = false

  validation {
    condition     = floor(var.db_idle_session_timeout_seconds) == var.db_idle_session_timeout_seconds && (var.db_idle_session_timeout_seconds == 0 || (var.db_idle_session_timeout_seconds >= 30 && var.db_idle_session_timeout_seconds <= 86400))
    error_message = "db_idle_session_timeout_seconds must be 0 (disabled) or a whole number of seconds from 30 to 86400."
  }
}

variable "db_max_connections" {
  description = "The database connections this function may use: its share of the cluster's connection limit, after leaving room for the migration function, psql sessions and (Aurora) RDS's own reserved connections. Each warm Lambda instance holds exactly one connection, so reserved_concurrent_executions must not exceed this. null: derived (see local.db_connection_budget): with aurora-postgresql from cluster_max_acu when Terraform creates the cluster, 150 for an existing one; with dsql 9,980, DSQL's default quota of 10,000 connections per cluster minus 20 (raise the quota in Service Quotas, then set this). Aurora Serverless v2 PostgreSQL sets max_connections from the maximum capacity: 189 at a maximum of 1 ACU; with a minimum capacity of 0 (auto-pause) or 0.5 ACU it is capped at 2,000 however large the maximum."
  type        = number
  default     = null

  validation {
    condition     = var.db_max_connections == null || try(var.db_max_connections >= 1 && floor(var.db_max_connections) == var.db_max_connections, false)
    error_message = "db_max_connections must be a positive whole number (or null to derive it)."
  }
}

# ---------------------------------------------------------------------------
# Migrations and the one-time database set-up
# ---------------------------------------------------------------------------

variable "migrate_on_apply" {
  description = "Invoke the migration function from `terraform apply` whenever the engine's migrations (migrations/*.sql, or migrations/dsql/*.sql with dsql) or the package change, and fail the apply with the migration's error if one fails. Both engines. false: run migrations yourself (invoke the <name>-migrate function with {\"action\":\"migrate\"})."
  type        = bool
  default     = true
  nullable    = false
}

variable "migrate_timeout" {
  description = "Timeout of the migration function in seconds (60 to 900; at least db_connect_timeout_secs + 80): the connection (up to db_connect_timeout_secs, an auto-paused cluster resuming), up to 45 s of retried logins while IAM propagates a new policy, plus every pending migration. Its sessions' statement_timeout is what remains after the connect timeout, those 45 s and 5 s."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.migrate_timeout >= 60 && var.migrate_timeout <= 900 && floor(var.migrate_timeout) == var.migrate_timeout
    error_message = "migrate_timeout must be a whole number of seconds from 60 to 900."
  }
}

variable "bootstrap_database" {
  description = "db_engine = \"aurora-postgresql\" with an existing cluster only (DSQL needs no set-up: its one database exists, and the DSQL migrations create the roles): run scripts/bootstrap-db.sh from `terraform apply` (once per cluster) to create db_name, app_owner and app_runtime as the master user through the RDS Data API, without a network path to the cluster. Needs the cluster's HTTP endpoint (Data API) enabled, an RDS-managed master password (Secrets Manager), and the AWS CLI v2 and bash where terraform runs. A cluster Terraform creates is always set up this way."
  type        = bool
  default     = false
  nullable    = false
}

# ---------------------------------------------------------------------------
# Optional: the cluster itself. create_cluster, cluster_deletion_protection
# and cluster_kms_key_arn apply to both engines; the rest to Aurora only.
# ---------------------------------------------------------------------------

variable "create_cluster" {
  description = "Create the database cluster here. aurora-postgresql: an Aurora PostgreSQL Serverless v2 cluster (IAM authentication, RDS-managed master password, encryption, deletion protection, auto-pause at 0 ACU, the Data API for the one-time set-up) in subnet_ids (two or more, in different availability zones), with a security group that lets only the functions in. dsql: a single-Region Aurora DSQL cluster (aws_dsql_cluster: deletion protection, encrypted with cluster_kms_key_arn or an AWS-owned key, tagged), which needs no VPC. false: use an existing cluster (db_cluster_identifier, or dsql_cluster_arn)."
  type        = bool
  default     = false
  nullable    = false
}

variable "cluster_engine_version" {
  description = "Aurora PostgreSQL version a created cluster starts with: a major version (\"16\", the default) for its newest available minor, looked up at plan time (data.aws_rds_engine_version), or a full version (\"16.6\") to pin one, which AWS refuses once it retires it. 14 or later: the API's sessions use idle_session_timeout (PostgreSQL 14); auto-pause (cluster_min_acu = 0) needs 14.12, 15.7, 16.3 or later, which plan checks. RDS applies minor upgrades afterwards and Terraform ignores the difference; for a major upgrade, upgrade the cluster (aws rds modify-db-cluster --engine-version ... --allow-major-version-upgrade) and then set this to match."
  type        = string
  default     = "16"
  nullable    = false

  validation {
    condition     = can(regex("^(1[4-9]|[2-9][0-9])(\\.[0-9]+)?$", var.cluster_engine_version))
    error_message = "cluster_engine_version must be an Aurora PostgreSQL major version such as \"16\" (its newest minor), or a full version such as \"16.6\"; 14 or later (idle_session_timeout arrived in PostgreSQL 14)."
  }
}

variable "cluster_min_acu" {
  description = "Minimum capacity of a created cluster in ACUs. 0 lets it pause when idle (cluster_seconds_until_auto_pause); the first request afterwards waits 15 to 30 s for it to resume. 0 needs Aurora PostgreSQL 16.3, 15.7, 14.12 or later (plan checks the version cluster_engine_version resolves to). With 0 or 0.5, max_connections is capped at 2,000."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.cluster_min_acu >= 0 && var.cluster_min_acu <= 256 && floor(var.cluster_min_acu * 2) == var.cluster_min_acu * 2
    error_message = "cluster_min_acu must be 0 to 256 in steps of 0.5."
  }
}

variable "cluster_max_acu" {
  description = "Maximum capacity of a created cluster in ACUs (1 to 256, steps of 0.5). It also sets the cluster's max_connections, and so the default connection budget (local.db_connection_budget): about 189 connections per ACU of maximum capacity, capped at 2,000 with a minimum below 1 ACU and at 5,000 otherwise."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.cluster_max_acu >= 1 && var.cluster_max_acu <= 256 && floor(var.cluster_max_acu * 2) == var.cluster_max_acu * 2
    error_message = "cluster_max_acu must be 1 to 256 in steps of 0.5."
  }
}

variable "cluster_seconds_until_auto_pause" {
  description = "With cluster_min_acu = 0: idle seconds before a created cluster pauses (300 to 86400)."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.cluster_seconds_until_auto_pause >= 300 && var.cluster_seconds_until_auto_pause <= 86400 && floor(var.cluster_seconds_until_auto_pause) == var.cluster_seconds_until_auto_pause
    error_message = "cluster_seconds_until_auto_pause must be a whole number of seconds from 300 to 86400."
  }
}

variable "cluster_deletion_protection" {
  description = "Deletion protection of a created cluster (Aurora PostgreSQL or DSQL). Set false and apply before `terraform destroy` can remove it: with it on, destroy stops before the Aurora cluster's writer instance (a guard in cluster.tf), since RDS would delete the instance and then refuse the cluster. Aurora takes a final snapshot unless cluster_skip_final_snapshot; DSQL takes none (back it up first if its data matters)."
  type        = bool
  default     = true
  nullable    = false
}

variable "cluster_skip_final_snapshot" {
  description = "A created Aurora cluster: delete it without a final snapshot (`terraform destroy`, or a replacement). false (the default) keeps a snapshot named <name>-final-<8 characters unique to the cluster> (terraform output cluster_final_snapshot_identifier), so that a cluster created again under the same name can be destroyed too. true only for clusters whose data does not matter (a test deployment)."
  type        = bool
  default     = false
  nullable    = false
}

variable "cluster_data_api" {
  description = "A created Aurora cluster: enable the RDS Data API (the cluster's HTTP endpoint), through which scripts/bootstrap-db.sh creates the database and roles as the master user without a network path to the cluster. true (the default) for the first apply, which runs that set-up. Once it has run, set false and apply: the Data API lets anyone with rds-data:ExecuteStatement on the cluster and read access to the master secret run SQL as the master user over HTTPS, around the private network. Set it true again before an apply that runs the set-up again (a new db_name, a changed db_idle_session_timeout_seconds); the set-up fails while it is off, saying so. An existing cluster's Data API is yours to turn off (aws rds disable-http-endpoint)."
  type        = bool
  default     = true
  nullable    = false
}

variable "cluster_backup_retention_days" {
  description = "Automated backup retention of a created cluster in days (1 to 35)."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.cluster_backup_retention_days >= 1 && var.cluster_backup_retention_days <= 35 && floor(var.cluster_backup_retention_days) == var.cluster_backup_retention_days
    error_message = "cluster_backup_retention_days must be a whole number from 1 to 35."
  }
}

variable "cluster_kms_key_arn" {
  description = "Optional customer-managed KMS key ARN for a created cluster's storage: Aurora PostgreSQL (and its master secret), or DSQL (kms_encryption_key; the key policy must let DSQL use it). null: the AWS-managed keys (aws/rds, aws/secretsmanager), or DSQL's AWS-owned key."
  type        = string
  default     = null

  validation {
    condition     = var.cluster_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.cluster_kms_key_arn))
    error_message = "cluster_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}
