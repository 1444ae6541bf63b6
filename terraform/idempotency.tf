# The scheduled cleanup of Idempotency-Key records. A write sent with the
# header records its answer in idempotency_keys (migrations/0003), which
# expires after var.idempotency_ttl_seconds (IDEMPOTENCY_TTL_SECS). A request
# ignores expired records, and nothing on the request path deletes them in
# bulk: EventBridge invokes the API function on a schedule with the constant
# event {"action":"cleanup"}, and the function deletes expired records in
# batches (500 per transaction, at most 100 batches a run; the next run takes
# the rest) and answers {"deleted": N}.
#
# The target is what the API integration invokes (api_gateway.tf): the
# function itself, unqualified (no alias, no published version). EventBridge
# invokes it asynchronously; a failed run is retried by Lambda, and the
# cleanup is idempotent anyway.

resource "aws_cloudwatch_event_rule" "idempotency_cleanup" {
  name                = "${var.name}-idempotency-cleanup"
  description         = "Deletes expired Idempotency-Key records: invokes ${local.function_name} with {\"action\":\"cleanup\"}"
  schedule_expression = var.idempotency_cleanup_schedule
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "idempotency_cleanup" {
  rule      = aws_cloudwatch_event_rule.idempotency_cleanup.name
  target_id = "idempotency-cleanup"
  arn       = aws_lambda_function.this.arn
  # Exactly this: the function answers any other event as an API Gateway event.
  input = jsonencode({ action = "cleanup" })
}

# Lets this rule, and nothing else on EventBridge, invoke the API function.
resource "aws_lambda_permission" "idempotency_cleanup" {
  statement_id  = "AllowInvokeFromIdempotencyCleanupSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.idempotency_cleanup.arn
}
