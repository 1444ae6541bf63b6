# Derived values that depend on variables only (no provider data), so that
# terraform/tests can evaluate them with a bare `terraform console`.

locals {
  function_name   = var.name
  lambda_zip_path = coalesce(var.lambda_zip_path, "${path.module}/../dist/lambda.zip")

  vpc_attached = length(var.subnet_ids) > 0

  # Who may call the API. One source at a time, picked in this order:
  #   1. a bearer key is given (public key, or an HS256 secret)
  #        -> bearer_jwt: the function verifies `Authorization: Bearer` itself
  #           (signature with the key; iss/aud when jwt_issuer/jwt_audience are set);
  #   2. jwt_issuer and jwt_audience are given
  #        -> apigw_jwt: an API Gateway JWT authorizer checks the token before the
  #           function runs, and the function reads the verified claims;
  #   3. nothing -> closed: IDENTITY_SOURCES is empty and every /api call gets 401
  #      (checks.tf warns). /health stays open.
  # A key wins over issuer+audience because bearer_jwt needs those two as well
  # (to check iss and aud), so the other order would make it unreachable.
  # nonsensitive(): only whether the secret is set drives these choices (and
  # `count`), never its value.
  bearer_key_set   = var.bearer_jwt_public_key_pem != null || nonsensitive(var.bearer_jwt_hs256_secret != null)
  use_bearer_jwt   = local.bearer_key_set
  use_apigw_jwt    = !local.bearer_key_set && var.jwt_issuer != null && var.jwt_audience != null
  identity_sources = local.use_bearer_jwt ? "bearer_jwt" : (local.use_apigw_jwt ? "apigw_jwt" : "")

  use_hs256 = local.use_bearer_jwt && var.jwt_algorithm == "HS256"

  # The function's environment: exactly the names the Rust code reads.
  # AWS_REGION is set by Lambda itself. Entries that are null are left out, so
  # an unused JWT_* variable is absent rather than empty.
  lambda_environment_public = {
    DB_HOST                 = var.db_host
    DB_PORT                 = tostring(var.db_port)
    DB_NAME                 = var.db_name
    DB_USER                 = var.db_user
    DB_AUTH                 = var.db_auth
    DB_CONNECT_TIMEOUT_SECS = tostring(var.db_connect_timeout_secs)
    DB_STATEMENT_TIMEOUT_MS = tostring(var.db_statement_timeout_ms)
    # One connection per Lambda instance: an instance serves one request at a
    # time, and the connection budget (db_max_connections) counts instances.
    DB_POOL_MAX = "1"
    LOG_LEVEL   = var.log_level

    # Empty means closed: nobody gets in.
    IDENTITY_SOURCES = local.identity_sources
    JWT_ISSUER       = local.use_bearer_jwt || local.use_apigw_jwt ? var.jwt_issuer : null
    JWT_AUDIENCE     = local.use_bearer_jwt || local.use_apigw_jwt ? var.jwt_audience : null
    JWT_ALGORITHM    = local.use_bearer_jwt ? var.jwt_algorithm : null
    JWT_PUBLIC_KEY   = local.use_bearer_jwt && !local.use_hs256 ? var.bearer_jwt_public_key_pem : null
  }

  # The HS256 secret is merged in separately: inside the map above, its
  # sensitivity would mark the whole environment sensitive and hide every
  # change to it from `terraform plan`, even when no secret is used.
  lambda_environment = merge(
    { for k, v in local.lambda_environment_public : k => v if v != null },
    local.use_hs256 ? { JWT_HS256_SECRET = var.bearer_jwt_hs256_secret } : {},
  )
}
