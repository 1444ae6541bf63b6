# API Gateway HTTP API: the `$default` route sends every method and path to
# the function (routing happens inside it), through the `$default` stage, so
# the API answers at its root URL without a stage prefix.

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  description   = "Multi-tenant API served by the ${local.function_name} Lambda function"
  protocol_type = "HTTP"

  # No cors_configuration: the function answers CORS itself (CORS_ALLOW_ORIGINS),
  # with each route's own methods. With an API-level CORS configuration API
  # Gateway would drop the function's CORS headers and answer with a fixed list.
  # The price: responses API Gateway makes itself (the JWT authorizer's 401, a
  # 429) carry no CORS headers, so a page sees them as failed requests.

  tags = local.tags
}

resource "aws_apigatewayv2_integration" "lambda" {
  api_id                 = aws_apigatewayv2_api.this.id
  description            = "Lambda proxy to ${local.function_name}"
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this.invoke_arn
  payload_format_version = "2.0"
  # The most an HTTP API waits for an integration (a hard limit).
  timeout_milliseconds = 30000
}

# Only when jwt_issuer and jwt_audience are set and no bearer key is given
# (see locals.tf): API Gateway verifies the token (signature against the
# issuer's JWKS, exp, iss, aud) before the function runs.
resource "aws_apigatewayv2_authorizer" "jwt" {
  count = local.use_apigw_jwt ? 1 : 0

  api_id           = aws_apigatewayv2_api.this.id
  name             = "${var.name}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = [var.jwt_audience]
  }

  lifecycle {
    precondition {
      condition     = startswith(var.jwt_issuer, "https://")
      error_message = "The API Gateway JWT authorizer needs an https:// issuer URL with OpenID discovery (got ${var.jwt_issuer}). For other issuers set bearer_jwt_public_key_pem instead."
    }
  }
}

resource "aws_apigatewayv2_route" "default" {
  # JWT when an issuer is configured (apigw_jwt); otherwise NONE, and the
  # function itself authenticates every /api request (bearer_jwt) or refuses
  # all of them (closed).
  api_id    = aws_apigatewayv2_api.this.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.lambda.id}"

  authorization_type = local.use_apigw_jwt ? "JWT" : "NONE"
  authorizer_id      = one(aws_apigatewayv2_authorizer.jwt[*].id)
}

# The liveness probe stays reachable without a token even when the JWT
# authorizer guards `$default` (a more specific route wins over `$default`).
resource "aws_apigatewayv2_route" "health" {
  #checkov:skip=CKV_AWS_309:GET /health is public by design: liveness only, no database access, no data.
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "GET /health"
  target             = "integrations/${aws_apigatewayv2_integration.lambda.id}"
  authorization_type = "NONE"
}

# CORS preflights carry no token (browsers never send credentials with them),
# so the JWT authorizer on $default would refuse them with 401 and every
# cross-origin call would fail. Only with the authorizer and CORS origins
# (local.cors_preflight_route): this more specific route takes OPTIONS on every
# path to the same integration, unauthenticated, and the function answers the
# preflight from CORS_ALLOW_ORIGINS without touching any data.
resource "aws_apigatewayv2_route" "cors_preflight" {
  #checkov:skip=CKV_AWS_309:CORS preflights cannot carry a token; the route only answers OPTIONS, which the function handles without reading or writing data.
  count = local.cors_preflight_route ? 1 : 0

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "OPTIONS /{proxy+}"
  target             = "integrations/${aws_apigatewayv2_integration.lambda.id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, 14 days by default to keep a starter deployment cheap; set 365 or more where compliance requires a year of logs.
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit   = var.api_throttling_burst_limit
    throttling_rate_limit    = var.api_throttling_rate_limit
    detailed_metrics_enabled = var.api_detailed_metrics
  }

  # One JSON object per request. requestId is API Gateway's; integrationRequestId
  # is the Lambda request id that the function's own log lines carry.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId               = "$context.requestId"
      integrationRequestId    = "$context.integration.requestId"
      requestTime             = "$context.requestTime"
      sourceIp                = "$context.identity.sourceIp"
      userAgent               = "$context.identity.userAgent"
      httpMethod              = "$context.httpMethod"
      path                    = "$context.path"
      routeKey                = "$context.routeKey"
      protocol                = "$context.protocol"
      status                  = "$context.status"
      responseLength          = "$context.responseLength"
      responseLatency         = "$context.responseLatency"
      integrationLatency      = "$context.integration.latency"
      integrationStatus       = "$context.integration.status"
      integrationError        = "$context.integration.error"
      integrationErrorMessage = "$context.integrationErrorMessage"
      errorMessage            = "$context.error.message"
      authorizerError         = "$context.authorizer.error"
      principal               = "$context.authorizer.claims.sub"
    })
  }

  tags = local.tags
}

# Lets this API (any stage, any route) invoke the function, and nothing else.
resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowInvokeFromHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
