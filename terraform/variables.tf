# Inputs (the database's are in variables_database.tf). Every variable has a
# description and a type; `validation` blocks catch values that would
# otherwise only fail half-way through `apply` (or, worse, at the first
# request). Checks that involve more than one variable live in lifecycle
# preconditions (lambda.tf, iam.tf, database.tf, migrate.tf) and in checks.tf,
# because cross-variable validation needs Terraform 1.9.

# ---------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region to deploy into, e.g. \"eu-central-1\". Must be the region of the Aurora cluster. null takes the region from the environment (AWS_REGION / AWS_PROFILE)."
  type        = string
  default     = null

  validation {
    condition     = var.aws_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.aws_region))
    error_message = "aws_region must look like \"eu-central-1\" or \"us-gov-west-1\"."
  }
}

variable "name" {
  description = "Name of the deployment, at most 40 characters. Used for the Lambda functions (<name>, <name>-migrate), their log groups (/aws/lambda/<name>...), the HTTP API, the EventBridge rule (<name>-idempotency-cleanup), the IAM roles (<name>-lambda-<region>, <name>-migrate-<region>: IAM names are account-wide, so the Region keeps a second Region's deployment apart) and a created cluster (<name>)."
  type        = string
  default     = "tenant-api"
  nullable    = false

  validation {
    # 40 keeps every name made from it within AWS's limits
    # (terraform/tests/test_structure_first_apply.py computes them all): the
    # tightest is the IAM role <name>-migrate-<region>, 64 characters
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)
    # with the longest Region name, us-isof-south-1 (15); then the EventBridge
    # rule <name>-idempotency-cleanup, 64
    # (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html).
    # A created cluster's identifier takes lower-case letters, digits and
    # hyphens only.
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name)) && !can(regex("(--|-$)", var.name))
    error_message = "name must be 1 to 40 characters of lower-case letters, digits and single hyphens, starting with a letter and not ending with a hyphen (the names made from it, such as the IAM role <name>-migrate-<region>, must fit AWS's 64-character limits)."
  }
}

variable "tags" {
  description = "Tags set on every taggable resource (each resource's own `tags`, as the community modules do, so that they also apply when this configuration is used as a module under a provider without default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = length(var.tags) <= 40 && alltrue([for k, v in var.tags : length(k) >= 1 && length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:")])
    error_message = "tags: at most 40 (leaving room below AWS's limit of 50), keys of 1 to 128 characters not starting with \"aws:\", values of at most 256 characters."
  }
}

variable "iam_role_path" {
  description = "Path of the IAM roles this creates (organisations often require one, e.g. \"/service/\")."
  type        = string
  default     = "/"
  nullable    = false

  validation {
    condition     = can(regex("^/([\\x21-\\x7E]{0,510}/)?$", var.iam_role_path)) && length(var.iam_role_path) <= 512
    error_message = "iam_role_path must start and end with '/' (e.g. \"/\" or \"/service/\"), at most 512 printable characters."
  }
}

variable "iam_permissions_boundary_arn" {
  description = "Optional ARN of a managed policy set as the permissions boundary of every IAM role this creates (organisations that delegate role creation often require one)."
  type        = string
  default     = null

  validation {
    condition     = var.iam_permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.iam_permissions_boundary_arn))
    error_message = "iam_permissions_boundary_arn must be an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)."
  }
}

# ---------------------------------------------------------------------------
# Lambda function
# ---------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Path of the deployment zip (a single `bootstrap` executable) built by scripts/package.sh. null means <repo>/dist/lambda.zip."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_zip_path == null || can(regex("\\.zip$", var.lambda_zip_path))
    error_message = "lambda_zip_path must name a .zip file (scripts/package.sh writes dist/lambda.zip)."
  }
}

variable "architecture" {
  description = "Instruction set of the function: \"arm64\" (Graviton, the default; what scripts/package.sh builds) or \"x86_64\". Must match the binary in the zip."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "memory_size" {
  description = "Memory of the function in MB (128 to 10240). CPU share grows with memory; 128 MB is plenty for this binary."
  type        = number
  default     = 128
  nullable    = false

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "timeout" {
  description = "Function timeout in seconds (1 to 900). Must exceed db_connect_timeout_secs by at least 5 s, so that a slow Aurora resume ends in the function's own 503 (and the instance survives) instead of a Lambda timeout. Note: API Gateway HTTP APIs stop waiting after 30 s whatever this says."
  type        = number
  default     = 40
  nullable    = false

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency of the function: the most instances that can run at once, and so the most database connections it holds (one per instance). null (the default) leaves it unreserved: a new AWS account's concurrency quota can be as low as 10, and Lambda refuses any reservation that leaves the account less than its minimum unreserved concurrency (\"decreases account's UnreservedConcurrentExecution below its minimum value\"), so reserving by default would fail the first apply. Unreserved, the function is bounded by the account's concurrency quota and by the stage's throttling (api_throttling_burst_limit + api_throttling_rate_limit x timeout instances at most; plan warns when that exceeds the connection budget). Once the account's quota allows (at least this + 100), set it: at most the connection budget (db_max_connections, or derived: see local.db_connection_budget), about half of it for deployment headroom; with Aurora DSQL, plan also warns above 1,000, DSQL's burst of new connections. 0 stops the function from running at all (an emergency off switch). -1 is the same as null."
  type        = number
  default     = null

  validation {
    # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
    # ("New AWS accounts have reduced concurrency and memory quotas") and
    # https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionConcurrency.html
    # (at least 100 of the account's concurrency stays unreserved).
    condition     = var.reserved_concurrent_executions == null || try(floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions && var.reserved_concurrent_executions >= -1, false)
    error_message = "reserved_concurrent_executions must be null (unreserved, the default), 0 (disabled) or a positive whole number (-1 is accepted as unreserved)."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing of the function: \"Active\" (samples requests and records Lambda's own segments: init, invoke) or \"PassThrough\" (only traces started upstream)."
  type        = string
  default     = "Active"
  nullable    = false

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be \"Active\" or \"PassThrough\"."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the function: error, warn, info, debug or trace. debug and trace may log SQL; never tokens or passwords."
  type        = string
  default     = "info"
  nullable    = false

  validation {
    condition     = contains(["error", "warn", "info", "debug", "trace"], var.log_level)
    error_message = "log_level must be one of error, warn, info, debug, trace."
  }
}

variable "log_retention_days" {
  description = "Retention in days of the function's log group and the API access log group. 0 keeps logs forever."
  type        = number
  default     = 14
  nullable    = false

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts: 0 (never expire), 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "log_kms_key_arn" {
  description = "Optional ARN of a customer-managed KMS key for both log groups. null uses CloudWatch Logs' own encryption. The key policy must allow the logs.<region>.amazonaws.com principal."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "subnet_ids" {
  description = "Subnets to attach the functions to (the Aurora cluster's VPC), and where a created Aurora cluster lives (create_cluster: two or more, in different availability zones). Leave empty for no VPC attachment, which only works when the database is reachable from the internet: an Aurora cluster that is publicly accessible, or Aurora DSQL, whose endpoint is public (with subnets, the functions reach DSQL only through a NAT gateway or a DSQL interface VPC endpoint; checks.tf warns). With an existing Aurora cluster, set together with security_group_ids. No NAT is needed to reach Aurora: the IAM token is signed locally."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids must be subnet IDs like \"subnet-0123456789abcdef0\"."
  }
}

variable "security_group_ids" {
  description = "Security groups of the functions when attached to a VPC. An existing cluster's security group must allow inbound TCP on its port from one of them; set together with subnet_ids. With create_cluster, Terraform adds a security group of its own that the cluster admits, and these are optional."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "security_group_ids must be security group IDs like \"sg-0123456789abcdef0\"."
  }
}

# ---------------------------------------------------------------------------
# Identity: who may call the API (see locals.tf for how the mode is chosen)
# ---------------------------------------------------------------------------

variable "jwt_issuer" {
  description = "Issuer (iss) of the JWTs the API accepts. With jwt_audience and no bearer key, API Gateway checks tokens with a JWT authorizer (the issuer must be an https:// OpenID Connect issuer that serves /.well-known/openid-configuration, e.g. a Cognito user pool or Auth0 tenant). With a bearer key the function checks iss itself."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_issuer == null || can(regex("^[^\\s]+$", var.jwt_issuer))
    error_message = "jwt_issuer must be a non-empty string without spaces (for the API Gateway authorizer: an https:// URL)."
  }
}

variable "jwt_audience" {
  description = "Audience (aud) the API's JWTs must carry (for Cognito: the app client ID). Set together with jwt_issuer."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_audience == null || can(regex("^[^\\s,]+$", var.jwt_audience))
    error_message = "jwt_audience must be one non-empty value without spaces or commas."
  }
}

variable "bearer_jwt_public_key_pem" {
  description = "PEM public key (-----BEGIN PUBLIC KEY-----) the function verifies Authorization: Bearer JWTs with, for issuers without OpenID discovery. Setting it (or bearer_jwt_hs256_secret) selects IDENTITY_SOURCES=bearer_jwt, and then jwt_issuer/jwt_audience are checked by the function, not by API Gateway."
  type        = string
  default     = null

  validation {
    condition = var.bearer_jwt_public_key_pem == null || (
      can(regex("-----BEGIN (RSA |EC )?PUBLIC KEY-----", var.bearer_jwt_public_key_pem))
      && can(regex("-----END (RSA |EC )?PUBLIC KEY-----", var.bearer_jwt_public_key_pem))
      && try(length(var.bearer_jwt_public_key_pem) <= 3000, false)
    )
    error_message = "bearer_jwt_public_key_pem must be a PEM public key (BEGIN/END PUBLIC KEY) of at most 3000 characters (Lambda's environment holds 4 KB in all)."
  }
}

variable "bearer_jwt_jwks" {
  description = "JSON Web Key Set ({\"keys\": [...]}, each key with a `kid`) the function verifies Authorization: Bearer JWTs with: tokens name their key by `kid`, so list the old and the new key while rotating. Wins over bearer_jwt_public_key_pem; selects IDENTITY_SOURCES=bearer_jwt like it. Passed as JWT_JWKS."
  type        = string
  default     = null

  validation {
    condition = var.bearer_jwt_jwks == null || try(
      length(jsondecode(var.bearer_jwt_jwks).keys) > 0
      && alltrue([for k in jsondecode(var.bearer_jwt_jwks).keys : can(k.kid) && can(k.kty)])
      && length(var.bearer_jwt_jwks) <= 3000,
      false
    )
    error_message = "bearer_jwt_jwks must be a JSON Web Key Set {\"keys\": [...]} with at least one key, each with \"kid\" and \"kty\", at most 3000 characters (Lambda's environment holds 4 KB in all)."
  }
}

variable "jwt_algorithm" {
  description = "JWT_ALGORITHM for bearer_jwt: RS256 or ES256 (with bearer_jwt_public_key_pem) or HS256 (with bearer_jwt_hs256_secret)."
  type        = string
  default     = "RS256"
  nullable    = false

  validation {
    condition     = contains(["RS256", "ES256", "HS256"], var.jwt_algorithm)
    error_message = "jwt_algorithm must be RS256, ES256 or HS256."
  }
}

variable "bearer_jwt_hs256_secret" {
  description = "Shared HS256 secret for bearer_jwt (jwt_algorithm = \"HS256\"). Discouraged outside testing: it ends up in the Terraform state and in the function's configuration, and anyone holding it can mint tokens. Prefer a public key or the API Gateway JWT authorizer."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.bearer_jwt_hs256_secret == null || try(length(var.bearer_jwt_hs256_secret) >= 32, false)
    error_message = "bearer_jwt_hs256_secret must be at least 32 characters."
  }
}

# ---------------------------------------------------------------------------
# HTTP API
# ---------------------------------------------------------------------------

variable "api_throttling_burst_limit" {
  description = "Burst limit (requests) of the API's $default stage: how many requests API Gateway lets through at once. With reserved_concurrent_executions set, keep it at or below that (checks.tf warns): a burst beyond what the function may run concurrently is throttled by Lambda and answered 5xx, where API Gateway would have answered 429. Unreserved, it and api_throttling_rate_limit are what bounds the function's instances (and database connections)."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.api_throttling_burst_limit >= 0 && floor(var.api_throttling_burst_limit) == var.api_throttling_burst_limit
    error_message = "api_throttling_burst_limit must be a whole number >= 0."
  }
}

variable "api_throttling_rate_limit" {
  description = "Steady-state rate limit (requests per second) of the API's $default stage. Each instance serves one request at a time, so this may exceed reserved_concurrent_executions as long as requests are short (50 requests/s on 10 instances leaves 200 ms per request). Unreserved (reserved_concurrent_executions = null), the function's instances are bounded by api_throttling_burst_limit + this x timeout when every request is slow (an Aurora resume, a stalled database): plan warns when that exceeds the connection budget."
  type        = number
  default     = 50
  nullable    = false

  validation {
    condition     = var.api_throttling_rate_limit >= 0
    error_message = "api_throttling_rate_limit must be >= 0."
  }
}

variable "api_detailed_metrics" {
  description = "Turn on per-route CloudWatch metrics for the $default stage (billed as custom metrics)."
  type        = bool
  default     = false
  nullable    = false
}

variable "legacy_user_issuer" {
  description = "The issuer whose identities may take over user rows registered before issuers were recorded (migration 0002), as the function writes it: \"jwt:<iss>\" or \"lambda-authorizer\". Passed to the function as LEGACY_USER_ISSUER. null (the default): such rows are never claimed, and the same subject from any issuer becomes a new user. Set it only on a deployment that has such rows, to the issuer it trusted then."
  type        = string
  default     = null

  validation {
    condition     = var.legacy_user_issuer == null || can(regex("^(jwt:\\S{1,508}|lambda-authorizer)$", var.legacy_user_issuer))
    error_message = "legacy_user_issuer must be \"jwt:\" followed by the token issuer's iss, or \"lambda-authorizer\"."
  }
}

variable "plans" {
  description = "The plan catalogue over the built-in one (free, the default; standard; premium): {default = \"standard\", plans = {free = {todos = 200}, enterprise = {rate = 1000, burst = 8000, todos = 10000000, members = 10000, pending_invitations = 10000, tenants_per_user = 100}}}. A plan named again keeps the settings not given; a new plan gives all six. Passed to the function as PLANS (JSON), which refuses a catalogue it cannot use at start-up. null (the default): the built-in plans. README: Plans and limits."
  type        = any
  default     = null

  validation {
    # || and && evaluate both sides: the checks of a value stay inside try(), so that null is
    # accepted and a value of another shape is refused, not an error.
    condition = var.plans == null || try(
      length(setsubtract(keys(var.plans), ["default", "plans"])) == 0 &&
      alltrue([for name in keys(try(var.plans.plans, {})) : can(regex("^[a-z0-9-]{1,32}$", name))]) &&
      alltrue(flatten([for p in values(try(var.plans.plans, {})) : [
        for k, v in p : contains(["rate", "burst", "todos", "members", "pending_invitations", "tenants_per_user"], k) && tonumber(v) > 0
      ]])),
      false
    )
    error_message = "plans must be an object with optional \"default\" (a plan name) and \"plans\" (names of 1 to 32 characters a-z, 0-9, -), each plan giving positive numbers among rate, burst, todos, members, pending_invitations, tenants_per_user."
  }
}

variable "cors_allow_origins" {
  description = "Origins allowed to call the API from a browser (CORS), e.g. [\"https://app.example.com\"], or [\"*\"]. Empty means no CORS. Passed to the function as CORS_ALLOW_ORIGINS (comma-separated), which answers preflights and adds the CORS headers itself; the HTTP API has no CORS configuration of its own (it would replace the function's headers). With the JWT authorizer, an unauthenticated `OPTIONS /{proxy+}` route takes the preflights (browsers send them without a token); the authorizer's own 401s carry no CORS headers, so browser clients may prefer bearer_jwt, where the function answers every request."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for o in var.cors_allow_origins : o == "*" || can(regex("^https?://[^/?\\s]+$", o))])
    error_message = "cors_allow_origins entries must be \"*\" or an origin like \"https://app.example.com\" (scheme and host, no path)."
  }
}
