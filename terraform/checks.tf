# Warnings: `check` blocks never stop a plan, they print a warning with the
# message below. Hard errors live in lifecycle preconditions next to the
# resource they protect (lambda.tf, iam.tf, database.tf, migrate.tf).

check "identity_configured" {
  assert {
    condition     = local.identity_sources != ""
    error_message = "No identity source is configured (IDENTITY_SOURCES is empty): the API is closed and every /api request is answered 401; only GET /health works. Set jwt_issuer + jwt_audience (API Gateway JWT authorizer) or bearer_jwt_public_key_pem (the function verifies tokens itself)."
  }
}

check "rds_connect_scoped" {
  assert {
    condition     = !(local.use_rds && var.rds_iam_connect_any_cluster)
    error_message = "rds_iam_connect_any_cluster = true grants rds-db:connect on dbuser:*/${var.db_user}: the function may log in as ${var.db_user} to EVERY Aurora/RDS cluster with IAM authentication in this account and region. Turn it off unless you need it: the grant then names this cluster's resource ID."
  }
}

# Unreserved (the default: a new account cannot reserve concurrency), the
# function's instances, one database connection each, are bounded by the
# account's concurrency quota and by the stage's throttling: a burst, then the
# rate, each request holding an instance up to the function's timeout when
# the database is slow. Warned about when that bound exceeds the budget.
check "concurrency_bounded" {
  assert {
    condition     = local.reserved_concurrency != -1 || local.unreserved_peak_concurrency <= local.db_connection_budget
    error_message = "The function's concurrency is not reserved (reserved_concurrent_executions = null, the default, because a new account's concurrency quota, as low as 10, cannot reserve any): its instances, one database connection each, are bounded only by the account's concurrency quota and by the stage's throttling, up to api_throttling_burst_limit + api_throttling_rate_limit x timeout = ${var.api_throttling_burst_limit} + ${var.api_throttling_rate_limit} x ${var.timeout} = ${local.unreserved_peak_concurrency} at once when requests are slow (an Aurora resume, a stalled database), above the connection budget (${local.db_connection_budget}). Once the account's quota allows (Service Quotas, AWS Lambda, Concurrent executions: at least the reservation + 100), set reserved_concurrent_executions (at most ${floor(local.db_connection_budget / 2)}, half the budget); until then lower api_throttling_rate_limit to ${max(0, floor((local.db_connection_budget - var.api_throttling_burst_limit) / var.timeout))} or less, or accept the risk while the account's own quota is below the budget."
  }
}

# API Gateway lets a burst of api_throttling_burst_limit requests through at
# once; beyond the function's reserved concurrency Lambda throttles them, and
# the client gets a 5xx instead of API Gateway's clean 429.
check "throttling_within_concurrency" {
  assert {
    condition     = local.reserved_concurrency <= 0 || var.api_throttling_burst_limit <= local.reserved_concurrency
    error_message = "api_throttling_burst_limit (${var.api_throttling_burst_limit}) exceeds reserved_concurrent_executions (${local.reserved_concurrency}): a burst beyond what the function may run at once is throttled by Lambda and answered 5xx, not 429. Lower the burst limit or raise the reserved concurrency."
  }
}

# During a deployment the old version's instances keep their connections
# until Lambda reaps them, next to the new version's: up to twice the
# reserved concurrency.
check "deploy_headroom" {
  assert {
    condition     = local.reserved_concurrency <= 0 || 2 * local.reserved_concurrency <= local.db_connection_budget
    error_message = "reserved_concurrent_executions (${local.reserved_concurrency}) leaves no headroom in the connection budget (${local.db_connection_budget}) for the old version's instances during a deployment: under full load, old and new instances together may hold up to ${2 * local.reserved_concurrency} connections. Keep it at about half the budget."
  }
}

check "hs256_secret_discouraged" {
  assert {
    condition     = !local.use_hs256
    error_message = "bearer_jwt uses an HS256 shared secret: it is stored in the Terraform state and the function's configuration, and anyone who holds it can mint tokens for any user. Use RS256/ES256 with bearer_jwt_public_key_pem or the API Gateway JWT authorizer for production."
  }
}

check "function_enabled" {
  assert {
    condition     = local.reserved_concurrency != 0
    error_message = "reserved_concurrent_executions = 0: the function is disabled and every request fails (API Gateway answers 5xx) until you raise it."
  }
}

check "migrations_run" {
  assert {
    condition     = var.migrate_on_apply
    error_message = "migrate_on_apply = false: terraform apply does not run the migrations. Invoke the ${local.migrate_function_name} function with {\"action\":\"migrate\"} before deploying code that needs a new migration."
  }
}

# Alarm settings without alarms_enabled create nothing.
check "alarm_settings_used" {
  assert {
    condition     = var.alarms_enabled || (var.alarm_sns_topic_arn == null && var.alarm_email == null)
    error_message = "alarm_sns_topic_arn or alarm_email is set, but alarms_enabled = false: no alarm is created and nobody is notified. Set alarms_enabled = true."
  }
}

# A warm instance holds its connection while frozen; without the idle session
# timeout a created cluster at 0 ACU pauses only once Lambda retires every
# instance that ever connected.
check "idle_sessions_end" {
  assert {
    condition     = !(local.create_cluster && var.cluster_min_acu == 0 && var.db_idle_session_timeout_seconds == 0)
    error_message = "db_idle_session_timeout_seconds = 0 with cluster_min_acu = 0: idle Lambda instances keep their database connections open, and Aurora Serverless v2 cannot auto-pause while any connection is open, so the cluster keeps running (and billing capacity) long after the last request. Set db_idle_session_timeout_seconds (600 by default)."
  }
}

# Aurora DSQL admits 100 new connections a second per cluster, with a burst
# of 1,000 (neither adjustable). Lambda's own scale-up (at most 1,000 new
# instances per function every 10 s) stays within that; but a warm fleet
# above the burst that reconnects at once (its connections dropped together,
# or reaching their maximum age together after a scale-up) has its excess
# refused (SQLSTATE 53400) until the bucket refills.
check "dsql_connection_rate" {
  assert {
    condition     = !local.use_dsql || local.reserved_concurrency <= local.dsql_connection_burst
    error_message = "reserved_concurrent_executions (${local.reserved_concurrency}) is above Aurora DSQL's burst of ${local.dsql_connection_burst} new connections per cluster (refilled at ${local.dsql_connection_rate} a second, not adjustable): when more warm instances than that reconnect at once (their connections dropped together, or replaced at their maximum age together after a scale-up), DSQL refuses the excess connections (SQLSTATE 53400) for up to ${ceil((local.reserved_concurrency - local.dsql_connection_burst) / local.dsql_connection_rate)} s, and the function answers those requests 503. Keep it at ${local.dsql_connection_burst} or below unless your clients retry."
  }
}

# DSQL's endpoint is public: a function attached to subnets reaches it only
# through a NAT gateway or an interface VPC endpoint for DSQL connections
# (AWS PrivateLink), neither of which this configuration creates.
check "dsql_network" {
  assert {
    condition     = !(local.use_dsql && local.vpc_attached)
    error_message = "db_engine = \"dsql\" with subnet_ids: the functions run in your VPC and reach the DSQL endpoint only through a NAT gateway or an interface VPC endpoint for DSQL connections (AWS PrivateLink), which this configuration does not create; without one every connect times out (503). DSQL needs no VPC: leave subnet_ids and security_group_ids empty unless you have that route."
  }
}

# db_engine replaced db_auth; a value that agrees is accepted (lambda.tf
# refuses one that does not) and warned about.
check "db_auth_deprecated" {
  assert {
    condition     = var.db_auth == null
    error_message = "db_auth is deprecated: db_engine sets DB_AUTH now (iam for Aurora PostgreSQL; dsql and, for the migrations, dsql-admin for DSQL). Remove db_auth from your variables."
  }
}

# A created cluster's functions' security group lets them out to that cluster
# only (cluster.tf): silo tenants on other clusters need egress to them too,
# or every connection to them times out.
check "dedicated_databases_reachable" {
  assert {
    condition     = !(local.create_cluster && length(var.dedicated_database_users) > 0 && length(var.dedicated_database_security_group_ids) + length(var.dedicated_database_cidr_blocks) == 0)
    error_message = "dedicated_database_users lists ${length(var.dedicated_database_users)} database(s) on other clusters, but the functions' security group of a created cluster lets them reach this cluster only: connections to those tenants time out (503). Set dedicated_database_security_group_ids (or dedicated_database_cidr_blocks) to those clusters' security groups, and let each of them admit TCP 5432 from terraform output functions_security_group_id. (No warning is needed if one of security_group_ids already allows it.)"
  }
}
