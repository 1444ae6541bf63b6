# Warnings: `check` blocks never stop a plan, they print a warning with the
# message below. Hard errors live in lifecycle preconditions next to the
# resource they protect (lambda.tf, iam.tf, api_gateway.tf).

check "identity_configured" {
  assert {
    condition     = local.identity_sources != ""
    error_message = "No identity source is configured (IDENTITY_SOURCES is empty): the API is closed and every /api request is answered 401; only GET /health works. Set jwt_issuer + jwt_audience (API Gateway JWT authorizer) or bearer_jwt_public_key_pem (the function verifies tokens itself)."
  }
}

check "db_cluster_resource_id_scoped" {
  assert {
    condition     = var.db_auth != "iam" || var.db_cluster_resource_id != null
    error_message = "db_cluster_resource_id is not set, so rds-db:connect is granted on dbuser:*/${var.db_user}: the function may log in as ${var.db_user} to EVERY Aurora/RDS cluster with IAM authentication in this account and region. Set it to the cluster's DbClusterResourceId (aws rds describe-db-clusters --query 'DBClusters[0].DbClusterResourceId')."
  }
}

check "concurrency_bounded" {
  assert {
    condition     = var.reserved_concurrent_executions != -1
    error_message = "reserved_concurrent_executions = -1 (unreserved): the function can scale to the account's concurrency limit (1,000 by default), one database connection per instance, past db_max_connections (${var.db_max_connections}). A traffic spike then exhausts the database's connections instead of being throttled."
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
    condition     = var.reserved_concurrent_executions != 0
    error_message = "reserved_concurrent_executions = 0: the function is disabled and every request fails (API Gateway answers 5xx) until you raise it."
  }
}
