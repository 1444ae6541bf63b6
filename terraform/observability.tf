# Alarms on the API function's per-request metrics (docs/observability.md).
# The function writes one CloudWatch Embedded Metric Format record per request
# into its log; CloudWatch turns it into metrics in var.metrics_namespace:
#   Latency (Milliseconds), Requests, Errors5xx, DbRoundTrips,
#   DbConnectFailures, Retries (Count)
# under the dimension sets [Service] and [Service, Route, StatusClass] (and
# [Service, TenantId] with metrics_tenant_dimension), Service being the
# function's name. The alarms read the [Service] metrics, and Lambda's own
# Throttles; all of them only with alarms_enabled, each notifying the topic
# when it goes into ALARM and when it is back to OK. The dashboard is in
# dashboard.tf.

locals {
  # The topic the alarms notify: the one given, or the one created here.
  alarm_topic_arn = var.alarm_sns_topic_arn != null ? var.alarm_sns_topic_arn : one(aws_sns_topic.alarms[*].arn)
}

# --- The topic ----------------------------------------------------------------
# CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed
# alias/aws/sns key (its key policy does not let cloudwatch.amazonaws.com use
# it, and cannot be changed: the alarm's action fails with a KMS
# AccessDeniedException and nobody is told). The created topic therefore has
# a key of its own whose policy lets CloudWatch use it.

data "aws_iam_policy_document" "alarm_topic_key" {
  #checkov:skip=CKV_AWS_109:A key policy: "*" is the key it is attached to, and the account's root principal must be able to manage its own key (AWS's default key policy), or the key becomes unmanageable.
  #checkov:skip=CKV_AWS_111:A key policy: "*" is the key it is attached to; write access is for the account (default key policy) and encrypt/decrypt for CloudWatch alarms only.
  #checkov:skip=CKV_AWS_356:A key policy: "*" is the key it is attached to; a key policy cannot name the key's own ARN before the key exists.
  count = local.create_alarm_topic ? 1 : 0

  # AWS's default key policy: the account administers the key through IAM.
  statement {
    sid       = "AccountAdministersTheKey"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # What a CloudWatch alarm needs to publish to the encrypted topic.
  statement {
    sid       = "CloudWatchAlarmsPublish"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  description             = "Encrypts the ${var.name}-alarms SNS topic; CloudWatch alarms may use it"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarm_topic_key[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  name          = "alias/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms[0].key_id
}

resource "aws_sns_topic" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  name              = "${var.name}-alarms"
  display_name      = "${var.name} alarms"
  kms_master_key_id = aws_kms_key.alarms[0].arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = local.alarm_email_count

  topic_arn = local.alarm_topic_arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# --- The alarms -----------------------------------------------------------------

# 5xx rate: Errors5xx / Requests of the [Service] metrics, per minute, in
# percent; 3 bad minutes out of 5. No requests: no data, which counts as good.
resource "aws_cloudwatch_metric_alarm" "error_rate" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than ${var.alarm_error_rate_percent}% of the requests to ${local.function_name} were answered 5xx in 3 of the last 5 minutes (${var.metrics_namespace} Errors5xx / Requests). Look for the failing route and tenant with the Logs Insights queries in docs/observability.md."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_error_rate_percent
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]

  metric_query {
    id          = "rate"
    expression  = "100 * errors / requests"
    label       = "5xx rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "Errors5xx"
      dimensions  = { Service = aws_lambda_function.this.function_name }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "Requests"
      dimensions  = { Service = aws_lambda_function.this.function_name }
      period      = 60
      stat        = "Sum"
    }
  }

  tags = local.tags

  lifecycle {
    # CloudWatch notifies topics in the alarm's own region only.
    precondition {
      condition     = var.alarm_sns_topic_arn == null || try(split(":", var.alarm_sns_topic_arn)[3] == local.region, false)
      error_message = "alarm_sns_topic_arn is in ${try(split(":", var.alarm_sns_topic_arn)[3], "-")}, but the alarms are in ${local.region}: CloudWatch alarms notify topics in their own region only."
    }
  }
}

# p99 latency per minute; 3 bad minutes out of 5. A minute with too few
# requests for a meaningful p99 leaves the state as it is: the slowest of a
# handful of requests (a cold start, an Aurora resume) is not a trend.
resource "aws_cloudwatch_metric_alarm" "latency_p99" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name                            = "${var.name}-latency-p99"
  alarm_description                     = "The p99 latency of ${local.function_name} was above ${var.alarm_latency_p99_ms} ms in 3 of the last 5 minutes (${var.metrics_namespace} Latency). Compare DbRoundTrips and Retries on the dashboard, and the routes in Logs Insights."
  namespace                             = var.metrics_namespace
  metric_name                           = "Latency"
  dimensions                            = { Service = aws_lambda_function.this.function_name }
  extended_statistic                    = "p99"
  period                                = 60
  comparison_operator                   = "GreaterThanThreshold"
  threshold                             = var.alarm_latency_p99_ms
  evaluation_periods                    = 5
  datapoints_to_alarm                   = 3
  treat_missing_data                    = "notBreaching"
  evaluate_low_sample_count_percentiles = "ignore"
  alarm_actions                         = [local.alarm_topic_arn]
  ok_actions                            = [local.alarm_topic_arn]
  tags                                  = local.tags
}

# Lambda throttled the function: its reserved concurrency (or, unreserved, the
# account's concurrency quota) is exhausted (or reserved at 0),
# and API Gateway answered those requests 5xx.
resource "aws_cloudwatch_metric_alarm" "throttles" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-throttles"
  alarm_description   = "Lambda throttled ${local.function_name} (AWS/Lambda Throttles above ${var.alarm_throttles_threshold} in a minute): its reserved concurrency, or unreserved the account's concurrency quota, is exhausted, and API Gateway answered the throttled requests 5xx. Raise reserved_concurrent_executions within the connection budget (or the account's quota in Service Quotas), or lower the stage's throttling."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.this.function_name }
  statistic           = "Sum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_throttles_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
  tags                = local.tags
}

# Failed connection attempts in 2 consecutive minutes: the database is
# unreachable, refuses the IAM login, or is out of connections.
resource "aws_cloudwatch_metric_alarm" "db_connect_failures" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-db-connect-failures"
  alarm_description   = "${local.function_name} failed to connect to the database more than ${var.alarm_db_connect_failures_threshold} time(s) a minute for 2 minutes (${var.metrics_namespace} DbConnectFailures). Check the function's log for the reason: network, IAM login (rds_iam, rds-db:connect), max_connections."
  namespace           = var.metrics_namespace
  metric_name         = "DbConnectFailures"
  dimensions          = { Service = aws_lambda_function.this.function_name }
  statistic           = "Sum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_db_connect_failures_threshold
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
  tags                = local.tags
}
