# What you type next: curl the API, tail the logs, open psql, run migrations.
# scripts/psql.sh and scripts/migrate.sh read these with `terraform output -raw`.

output "api_url" {
  description = "Base URL of the API (the $default stage, no trailing slash), e.g. curl \"$(terraform -chdir=terraform output -raw api_url)/health\"."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "lambda_function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "lambda_function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "lambda_iam_role_arn" {
  description = "ARN of the API function's execution role: the identity that holds rds-db:connect (Aurora) or dsql:DbConnect (DSQL), and that the DSQL migrations map app_runtime to (DSQL_RUNTIME_ROLE_ARN; scripts/migrate.sh reads it)."
  value       = aws_iam_role.lambda.arn
}

output "lambda_log_group_name" {
  description = "CloudWatch log group of the function: aws logs tail \"$(terraform -chdir=terraform output -raw lambda_log_group_name)\" --follow."
  value       = aws_cloudwatch_log_group.lambda.name
}

output "api_access_log_group_name" {
  description = "CloudWatch log group of the API's access log (one JSON line per request)."
  value       = aws_cloudwatch_log_group.api_access.name
}

output "db_host" {
  description = "Database host the functions connect to (DB_HOST): the Aurora cluster's writer endpoint, or the DSQL cluster's endpoint (<id>.dsql.<region>.on.aws)."
  value       = local.db_host
}

output "db_port" {
  description = "Database port (DB_PORT)."
  value       = local.db_port
}

output "db_cluster_identifier" {
  description = "The Aurora cluster's identifier (looked up or created); null with DSQL (see dsql_cluster_identifier). scripts/bootstrap-db.sh takes it."
  value       = try(local.cluster.identifier, null)
}

output "db_cluster_resource_id" {
  description = "The Aurora cluster's resource ID, which the rds-db:connect ARNs name (dbuser:<resource id>/<user>)."
  value       = try(local.cluster.resource_id, null)
}

output "functions_security_group_id" {
  description = "The security group Terraform creates for the functions with create_cluster (null otherwise): the clusters of dedicated databases (dedicated_database_users) must admit TCP 5432 from it."
  value       = one(aws_security_group.functions[*].id)
}

output "cluster_final_snapshot_identifier" {
  description = "The snapshot RDS takes when `terraform destroy` deletes a created Aurora cluster (unique to this cluster: <name>-final-<8 characters>); null with cluster_skip_final_snapshot, without create_cluster, and on DSQL."
  value       = local.create_cluster && !var.cluster_skip_final_snapshot ? aws_rds_cluster.this[0].final_snapshot_identifier : null
}

output "db_connection_budget" {
  description = "The connections the API function may hold (db_max_connections, or derived from cluster_max_acu, or DSQL's 10,000 per cluster minus 20); reserved_concurrent_executions stays within it."
  value       = local.db_connection_budget
}

output "migrate_function_name" {
  description = "The migration function (both engines): aws lambda invoke --function-name <it> --cli-binary-format raw-in-base64-out --payload '{\"action\":\"migrate\"}' /dev/stdout"
  value       = aws_lambda_function.migrate.function_name
}

output "migrations" {
  description = "What the last migration run reported: {applied = [file names], already_applied = count}; null when terraform apply does not run migrations."
  value       = try(jsondecode(aws_lambda_invocation.migrate[0].result), null)
}

output "db_name" {
  description = "Database name (DB_NAME): db_name (default app) on Aurora, postgres on DSQL."
  value       = local.db_name
}

output "db_user" {
  description = "Database role the function logs in as (DB_USER)."
  value       = var.db_user
}

output "db_auth" {
  description = "How the API function authenticates to the database (DB_AUTH): iam (Aurora) or dsql (DSQL; the migrations use dsql-admin)."
  value       = local.db_auth
}

output "db_engine" {
  description = "The database engine (db_engine): aurora-postgresql or dsql. The functions' DB_ENGINE says postgres or dsql; scripts/psql.sh and scripts/migrate.sh read this."
  value       = var.db_engine
}

output "dsql_cluster_arn" {
  description = "The DSQL cluster's ARN (created, or dsql_cluster_arn), which dsql:DbConnect and dsql:DbConnectAdmin are granted on; null with Aurora PostgreSQL."
  value       = local.use_dsql ? local.dsql_cluster_arn : null
}

output "dsql_cluster_identifier" {
  description = "The DSQL cluster's identifier (the first label of its endpoint); null with Aurora PostgreSQL."
  value       = local.use_dsql ? local.dsql_cluster_id : null
}

output "aws_region" {
  description = "Region everything was deployed to (and the region IAM database tokens are signed for)."
  value       = local.region
}

output "identity_sources" {
  description = "IDENTITY_SOURCES of the function: apigw_jwt, bearer_jwt, or empty (closed: nobody can sign in)."
  value       = local.identity_sources
}

output "db_idle_session_timeout_seconds" {
  description = "idle_session_timeout of the API's sessions and app_runtime's default, in seconds (0: never); scripts/bootstrap-db.sh reads it."
  value       = var.db_idle_session_timeout_seconds
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the function's per-request metrics (docs/observability.md)."
  value       = var.metrics_namespace
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (alarm_sns_topic_arn, or the created <name>-alarms); null without alarms_enabled."
  value       = var.alarms_enabled ? local.alarm_topic_arn : null
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard; null without dashboard_enabled."
  value       = one(aws_cloudwatch_dashboard.this[*].dashboard_name)
}
