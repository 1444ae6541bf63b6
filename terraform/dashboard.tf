# Optional (dashboard_enabled): one CloudWatch dashboard, <name>, with the API
# function's per-request metrics (the [Service] dimension set in
# var.metrics_namespace, see observability.tf) and Lambda's own throttles and
# concurrency. Per-route and per-tenant views are Logs Insights queries
# (docs/observability.md): as dashboard widgets they would scan the log on
# every refresh.

locals {
  dashboard_service = aws_lambda_function.this.function_name

  # One time series widget: a title, where it sits, and its metrics.
  dashboard_widgets = [
    {
      title = "Requests per minute"
      x     = 0
      y     = 0
      metrics = [
        [var.metrics_namespace, "Requests", "Service", local.dashboard_service, { stat = "Sum", label = "requests" }],
      ]
    },
    {
      title = "5xx answers"
      x     = 12
      y     = 0
      metrics = [
        [var.metrics_namespace, "Errors5xx", "Service", local.dashboard_service, { id = "errors", stat = "Sum", label = "5xx" }],
        [var.metrics_namespace, "Requests", "Service", local.dashboard_service, { id = "requests", stat = "Sum", visible = false }],
        [{ id = "rate", expression = "100 * errors / requests", label = "5xx rate (%)", yAxis = "right" }],
      ]
    },
    {
      title = "Latency (ms)"
      x     = 0
      y     = 6
      metrics = [
        [var.metrics_namespace, "Latency", "Service", local.dashboard_service, { stat = "p50", label = "p50" }],
        [var.metrics_namespace, "Latency", "Service", local.dashboard_service, { stat = "p99", label = "p99" }],
      ]
    },
    {
      title = "Database round trips and retries"
      x     = 12
      y     = 6
      metrics = [
        [var.metrics_namespace, "DbRoundTrips", "Service", local.dashboard_service, { stat = "Average", label = "round trips per request" }],
        [var.metrics_namespace, "DbRoundTrips", "Service", local.dashboard_service, { stat = "Sum", label = "round trips", yAxis = "right" }],
        [var.metrics_namespace, "Retries", "Service", local.dashboard_service, { stat = "Sum", label = "retries", yAxis = "right" }],
      ]
    },
    {
      title = "Database connect failures"
      x     = 0
      y     = 12
      metrics = [
        [var.metrics_namespace, "DbConnectFailures", "Service", local.dashboard_service, { stat = "Sum", label = "connect failures" }],
      ]
    },
    {
      title = "Lambda throttles and concurrency"
      x     = 12
      y     = 12
      metrics = [
        ["AWS/Lambda", "Throttles", "FunctionName", local.dashboard_service, { stat = "Sum", label = "throttles" }],
        ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.dashboard_service, { stat = "Maximum", label = "concurrent executions", yAxis = "right" }],
      ]
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.dashboard_enabled ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      for w in local.dashboard_widgets : {
        type   = "metric"
        x      = w.x
        y      = w.y
        width  = 12
        height = 6
        properties = {
          title   = w.title
          region  = local.region
          view    = "timeSeries"
          stacked = false
          period  = 60
          metrics = w.metrics
        }
      }
    ]
  })
}
