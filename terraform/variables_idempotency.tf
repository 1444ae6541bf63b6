# Inputs: the records of `Idempotency-Key` requests (idempotency.tf,
# docs/deploy.md). A write sent with the header is recorded with its answer
# and replayed for a repeat until the record expires; expired records are
# deleted by the API function on a schedule, never on the request path.

variable "idempotency_ttl_seconds" {
  description = "IDEMPOTENCY_TTL_SECS: how long (seconds, 60 to 604800, i.e. one minute to seven days) a write sent with an Idempotency-Key is remembered, and a repeat with the same key answered from the record instead of running again. Clients must not retry a request with the same key after this long. Expired records are no longer used, and are deleted by the scheduled cleanup (idempotency_cleanup_schedule)."
  type        = number
  default     = 86400
  nullable    = false

  validation {
    condition     = var.idempotency_ttl_seconds >= 60 && var.idempotency_ttl_seconds <= 604800 && floor(var.idempotency_ttl_seconds) == var.idempotency_ttl_seconds
    error_message = "idempotency_ttl_seconds must be a whole number of seconds from 60 to 604800 (7 days)."
  }
}

variable "idempotency_cleanup_schedule" {
  description = "When EventBridge invokes the API function with {\"action\":\"cleanup\"}, which deletes expired Idempotency-Key records in batches: an EventBridge schedule expression, \"rate(...)\" or \"cron(...)\" (UTC), e.g. \"rate(1 hour)\", \"rate(1 day)\", \"cron(15 3 * * ? *)\". Expired records are ignored by requests anyway; the schedule only decides how long they take up space. Each run connects to the database, so it also resumes an auto-paused Aurora Serverless v2 cluster: the default of once a day keeps that to one wake-up a day (records then last up to a day past their expiry); with a cluster that never pauses, \"rate(1 hour)\" frees space sooner."
  type        = string
  default     = "rate(1 day)"
  nullable    = false

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.idempotency_cleanup_schedule))
    error_message = "idempotency_cleanup_schedule must be an EventBridge schedule expression: \"rate(<value> <unit>)\" or \"cron(<6 fields>)\", e.g. \"rate(1 hour)\"."
  }
}
