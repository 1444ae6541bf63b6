//! Who is calling, from what API Gateway established. Which sources are trusted is
//! configuration (`IDENTITY_SOURCES`), closed by default: with none configured nobody gets in.
//! A client header is never identity by itself; a bearer token counts only when the function
//! verifies its signature.

use api::{
    JwtVerifier, Principal,
    identity::{LAMBDA_AUTHORIZER_ISSUER, VerifyKey},
};
use lambda_http::{RequestExt, aws_lambda_events::apigw::ApiGatewayRequestAuthorizer, request::RequestContext};
use serde_json::Value;

use crate::{Error, Result};

/// A place the caller's identity may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The claims of an API Gateway JWT authorizer (HTTP API), or a Cognito authorizer (REST).
    ApiGatewayJwt,
    /// The context of a Lambda authorizer (`sub`, optional `email`, `name`; REST: `principalId`).
    LambdaAuthorizer,
    /// An `Authorization: Bearer` JWT that the function verifies itself (no API Gateway
    /// authorizer in front).
    BearerJwt,
}

impl Source {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "apigw_jwt" => Some(Source::ApiGatewayJwt),
            "lambda_authorizer" => Some(Source::LambdaAuthorizer),
            "bearer_jwt" => Some(Source::BearerJwt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Identity {
    sources: Vec<Source>,
    bearer: Option<JwtVerifier>,
    /// When set, API Gateway JWT claims must carry this `iss` too.
    issuer: Option<String>,
}

impl Identity {
    /// Reads `IDENTITY_SOURCES` (comma-separated `apigw_jwt`, `lambda_authorizer`,
    /// `bearer_jwt`; empty means closed) and, for `bearer_jwt`, the keys: `JWT_JWKS` (a JSON
    /// Web Key Set, keys chosen by `kid`: list the old and the new key while rotating), or one
    /// key: `JWT_ALGORITHM` (HS256, RS256, ES256) with `JWT_HS256_SECRET` or `JWT_PUBLIC_KEY`
    /// (PEM). `JWT_ISSUER` and `JWT_AUDIENCE` are required with `bearer_jwt` (a token minted
    /// for another application must not let its holder in) unless
    /// `JWT_SKIP_ISSUER_AUDIENCE_CHECK=true`, which is for local development only.
    pub fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut sources = Vec::new();
        for name in get("IDENTITY_SOURCES").unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let source = Source::parse(name).ok_or_else(|| {
                Error::config("IDENTITY_SOURCES", format!("has {name:?}; use apigw_jwt, lambda_authorizer, bearer_jwt"))
            })?;
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        let issuer = get("JWT_ISSUER");
        let audience = get("JWT_AUDIENCE");
        let bearer = if sources.contains(&Source::BearerJwt) {
            let skip = get("JWT_SKIP_ISSUER_AUDIENCE_CHECK").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if !skip {
                for (var, value) in [("JWT_ISSUER", &issuer), ("JWT_AUDIENCE", &audience)] {
                    if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                        return Err(Error::config(
                            var,
                            "is required with IDENTITY_SOURCES=bearer_jwt (set JWT_ISSUER and JWT_AUDIENCE; \
                             JWT_SKIP_ISSUER_AUDIENCE_CHECK=true only for local development)",
                        ));
                    }
                }
            } else {
                tracing::warn!(
                    "JWT_SKIP_ISSUER_AUDIENCE_CHECK=true: bearer tokens are not checked for issuer or audience (local development only)"
                );
            }
            let secret = get("JWT_HS256_SECRET");
            let algorithm =
                get("JWT_ALGORITHM").unwrap_or_else(|| if secret.is_some() { "HS256" } else { "RS256" }.into());
            let verifier = match algorithm.as_str() {
                _ if get("JWT_JWKS").is_some() => {
                    let jwks = get("JWT_JWKS").unwrap_or_default();
                    let keys = VerifyKey::from_jwks(&jwks).map_err(|e| Error::config("JWT_JWKS", e.to_string()))?;
                    JwtVerifier::new(keys, issuer.as_deref(), audience.as_deref())
                        .map_err(|e| Error::config("JWT_JWKS", e.to_string()))?
                }
                "HS256" => {
                    let secret = secret
                        .ok_or_else(|| Error::config("JWT_HS256_SECRET", "is required for JWT_ALGORITHM=HS256"))?;
                    JwtVerifier::hs256(secret.as_bytes(), issuer.as_deref(), audience.as_deref())
                        .map_err(|e| Error::config("JWT_HS256_SECRET", e.to_string()))?
                }
                "RS256" | "ES256" => {
                    let pem = get("JWT_PUBLIC_KEY").ok_or_else(|| {
                        Error::config("JWT_PUBLIC_KEY", format!("is required for JWT_ALGORITHM={algorithm}"))
                    })?;
                    // Environment variables often carry PEM with escaped newlines.
                    let pem = pem.replace("\\n", "\n");
                    JwtVerifier::public_key(&algorithm, pem.as_bytes(), issuer.as_deref(), audience.as_deref())
                        .map_err(|e| Error::config("JWT_PUBLIC_KEY", e.to_string()))?
                }
                other => {
                    return Err(Error::config("JWT_ALGORITHM", format!("is {other:?}; use HS256, RS256 or ES256")));
                }
            };
            Some(verifier)
        } else {
            None
        };
        Ok(Self { sources, bearer, issuer })
    }

    pub fn with_sources(sources: Vec<Source>, bearer: Option<JwtVerifier>) -> Self {
        Self { sources, bearer, issuer: None }
    }

    pub fn is_closed(&self) -> bool {
        self.sources.is_empty()
    }

    /// The caller, from the first configured source that has one.
    pub fn principal(&self, req: &lambda_http::Request) -> Option<Principal> {
        self.sources.iter().find_map(|source| match source {
            Source::ApiGatewayJwt => authorizer(req).and_then(|a| self.jwt_authorizer_principal(a)),
            Source::LambdaAuthorizer => authorizer(req).and_then(from_lambda_authorizer),
            Source::BearerJwt => {
                let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                match self.bearer.as_ref()?.verify_header(header) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::debug!(error = %e, "bearer token not accepted");
                        None
                    }
                }
            }
        })
    }

    fn jwt_authorizer_principal(&self, a: &ApiGatewayRequestAuthorizer) -> Option<Principal> {
        // HTTP API JWT authorizer: requestContext.authorizer.jwt.claims (strings); REST API
        // Cognito authorizer: requestContext.authorizer.claims.
        let cognito = match (&a.jwt, a.fields.get("claims")) {
            (None, Some(Value::Object(map))) => Some(map),
            _ => None,
        };
        if a.jwt.is_none() && cognito.is_none() {
            return None;
        }
        let claim = |k: &str| match (&a.jwt, cognito) {
            (Some(jwt), _) => jwt.claims.get(k).map(String::as_str),
            (None, Some(map)) => map.get(k).and_then(Value::as_str),
            (None, None) => None,
        };
        if let Some(want) = &self.issuer
            && claim("iss") != Some(want.as_str())
        {
            tracing::warn!("JWT authorizer claims from an unexpected issuer; refusing them");
            return None;
        }
        Principal::from_claims(Principal::jwt_issuer(claim("iss")), claim)
    }
}

fn authorizer(req: &lambda_http::Request) -> Option<&ApiGatewayRequestAuthorizer> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref(),
        RequestContext::ApiGatewayV1(ctx) => Some(&ctx.authorizer),
        _ => None,
    }
}

/// A Lambda authorizer's context: HTTP API (`authorizer.lambda`) or REST (flattened into
/// `authorizer`, with `principalId`).
fn from_lambda_authorizer(a: &ApiGatewayRequestAuthorizer) -> Option<Principal> {
    let get = |k: &str| match a.fields.get(k) {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Bool(true)) => Some("true"),
        _ => None,
    };
    Principal::from_claims(LAMBDA_AUTHORIZER_ISSUER.to_string(), |k| match k {
        "sub" => get("sub").or_else(|| get("principalId")),
        other => get(other),
    })
}
