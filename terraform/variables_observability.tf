# Inputs: per-request metrics, alarms and the dashboard (observability.tf,
# docs/observability.md). Everything here is off by default except the metrics
# themselves, which the function writes into its log (CloudWatch Embedded
# Metric Format) at no cost beyond the custom metrics they create.

variable "metrics_namespace" {
  description = "METRICS_NAMESPACE: the CloudWatch namespace of the function's per-request metrics (Latency, Requests, Errors5xx, DbRoundTrips, DbConnectFailures, Retries), which it writes as Embedded Metric Format records in its log. The alarms and the dashboard read the same namespace. Must not start with \"AWS/\" (reserved for AWS services)."
  type        = string
  default     = "TenantApi"
  nullable    = false

  validation {
    # CloudWatch: 1 to 255 of letters, digits and . - _ / # : and spaces.
    condition     = can(regex("^[A-Za-z0-9._/#:-][A-Za-z0-9._/#: -]{0,254}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1 to 255 letters, digits, spaces and . - _ / # : (not starting with a space), and must not start with \"AWS/\"."
  }
}

variable "metrics_tenant_dimension" {
  description = "METRICS_TENANT_DIMENSION: also publish every metric per tenant (the dimension set [Service, TenantId]). Costly with many tenants: CloudWatch bills each custom metric (each combination of metric name and dimension values) per metric-month, so this adds six metrics for every tenant that made a request in the month. Off by default: the tenant id is in every record as the property tenant_id anyway, so CloudWatch Logs Insights can break requests down by tenant without it (docs/observability.md)."
  type        = bool
  default     = false
  nullable    = false
}

variable "alarms_enabled" {
  description = "Create the CloudWatch alarms: 5xx rate, p99 latency, Lambda throttles and database connect failures of the API function, each notifying alarm_sns_topic_arn (or a topic created here) when it goes into ALARM and back to OK. Each alarm is billed per month (the 5xx rate, a metric math alarm of two metrics, as two)."
  type        = bool
  default     = false
  nullable    = false
}

variable "alarm_sns_topic_arn" {
  description = "With alarms_enabled: an existing SNS topic (in the deployment's region) that the alarms notify. null creates one, <name>-alarms, encrypted with a KMS key of its own that CloudWatch may use (alarms cannot publish to a topic encrypted with the AWS-managed alias/aws/sns key). An existing encrypted topic's key policy must allow cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be a standard SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)."
  }
}

variable "alarm_email" {
  description = "With alarms_enabled: an e-mail address subscribed to the alarm topic (the created one, or alarm_sns_topic_arn). AWS sends a confirmation mail first; nothing is delivered until it is confirmed. null subscribes nobody."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be one e-mail address, like \"oncall@example.com\"."
  }
}

variable "alarm_error_rate_percent" {
  description = "5xx alarm: the share of requests answered 5xx (Errors5xx / Requests of the namespace's [Service] metrics, in percent) above which a minute counts as bad; the alarm fires after 3 bad minutes out of 5. Minutes without requests count as good."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.alarm_error_rate_percent > 0 && var.alarm_error_rate_percent < 100
    error_message = "alarm_error_rate_percent must be above 0 and below 100."
  }
}

variable "alarm_latency_p99_ms" {
  description = "Latency alarm: the p99 of Latency (milliseconds, the function's own measure of a request) above which a minute counts as bad; the alarm fires after 3 bad minutes out of 5. Minutes with too few requests for a meaningful p99 leave the alarm as it is (one slow resume of an auto-paused cluster does not fire it)."
  type        = number
  default     = 1000
  nullable    = false

  validation {
    condition     = var.alarm_latency_p99_ms > 0 && var.alarm_latency_p99_ms <= 900000
    error_message = "alarm_latency_p99_ms must be above 0 and at most 900000 (the longest a Lambda function runs)."
  }
}

variable "alarm_throttles_threshold" {
  description = "Throttles alarm: Lambda throttles of the API function (AWS/Lambda Throttles, FunctionName) in one minute above which the alarm fires. 0: any throttle. A throttled request is answered 5xx by API Gateway; it means the reserved concurrency (or, unreserved, the account's concurrency quota) is exhausted, or reserved at 0."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.alarm_throttles_threshold >= 0 && floor(var.alarm_throttles_threshold) == var.alarm_throttles_threshold
    error_message = "alarm_throttles_threshold must be a whole number >= 0."
  }
}

variable "alarm_db_connect_failures_threshold" {
  description = "Database alarm: failed connection attempts (DbConnectFailures, summed over a minute) above which a minute counts as bad; the alarm fires after 2 bad minutes in a row. 0: any failure in two consecutive minutes (a single bad minute does not fire it)."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.alarm_db_connect_failures_threshold >= 0 && floor(var.alarm_db_connect_failures_threshold) == var.alarm_db_connect_failures_threshold
    error_message = "alarm_db_connect_failures_threshold must be a whole number >= 0."
  }
}

variable "dashboard_enabled" {
  description = "Create a CloudWatch dashboard, <name>, with the API function's requests, 5xx, p50/p99 latency, database round trips and connect failures, and Lambda's throttles and concurrency. Dashboards beyond the account's first three are billed per month."
  type        = bool
  default     = false
  nullable    = false
}
