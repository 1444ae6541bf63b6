//! Who is calling. The entry point (Lambda adapter, dev server) establishes a [`Principal`]
//! from something it trusts (API Gateway's authorizer, or a bearer token it verifies itself)
//! and puts it into the request's extensions, where a client cannot put anything. The app never
//! reads identity from a header.

use std::{
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use store::{DisplayName, Email, NewUser, UserId};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The identity provider's stable user id (`sub`).
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

impl Principal {
    pub fn new(subject: impl Into<String>) -> Self {
        Self { subject: subject.into(), email: None, name: None }
    }

    pub fn user_id(&self) -> UserId {
        UserId::for_subject(&self.subject)
    }

    /// The user row to create on the first call. Claims that do not pass validation (an email
    /// of the wrong shape, an overlong name) are left out rather than failing the request.
    pub fn new_user(&self) -> NewUser {
        NewUser {
            id: self.user_id(),
            subject: self.subject.clone(),
            name: self.name.as_deref().and_then(|n| DisplayName::parse(n).ok()),
            email: self.email.as_deref().and_then(|e| Email::parse(e).ok()),
        }
    }

    /// Builds a principal from a map of claims (JWT authorizer claims, Lambda authorizer
    /// context). `None` without a usable `sub`.
    pub fn from_claims<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let subject = get("sub").map(str::trim).filter(|s| !s.is_empty() && s.len() <= 255)?;
        Some(Self {
            subject: subject.to_string(),
            email: get("email").map(str::to_string),
            name: get("name").map(str::to_string),
        })
    }
}

/// The request id the entry point assigned (the Lambda request id on AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The claims we read from a bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a bearer token was not accepted. Logged at debug level, never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("token rejected: {0}")]
    Rejected(#[from] jsonwebtoken::errors::Error),
    #[error("key: {0}")]
    Key(String),
}

/// Verifies bearer JWTs: HS256 with a shared secret, or RS256 / ES256 with a public key;
/// `exp` required, `iss` and `aud` checked when configured.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8], issuer: Option<&str>, audience: Option<&str>) -> Result<Self, TokenError> {
        if secret.len() < 32 {
            return Err(TokenError::Key("an HS256 secret must be at least 32 bytes".into()));
        }
        Ok(Self::with(DecodingKey::from_secret(secret), Algorithm::HS256, issuer, audience))
    }

    /// `algorithm` is `RS256` or `ES256`; `pem` the public key.
    pub fn public_key(
        algorithm: &str,
        pem: &[u8],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, TokenError> {
        let (alg, key) = match algorithm {
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
            "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
            other => {
                return Err(TokenError::Key(format!("unsupported algorithm {other:?}; use RS256 or ES256")));
            }
        };
        let key = key.map_err(|e| TokenError::Key(format!("public key is not a valid PEM {algorithm} key: {e}")))?;
        Ok(Self::with(key, alg, issuer, audience))
    }

    fn with(key: DecodingKey, alg: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        // A configured issuer or audience must be present in the token, not merely match when
        // present.
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation }
    }

    /// Verifies an `Authorization` header value (`Bearer <jwt>`).
    pub fn verify_header(&self, authorization: Option<&str>) -> Result<Principal, TokenError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        self.verify(token)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        // The validation checks exp, iss and aud (which may be a string or an array); only the
        // identity claims are read here, and any that are not strings are left out.
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &self.key, &self.validation)?;
        let c = data.claims;
        Principal::from_claims(|k| c.get(k).and_then(serde_json::Value::as_str))
            .ok_or(TokenError::Key("the token's sub claim is empty".into()))
    }
}

/// Signs an HS256 token for local development and tests (`devserver token`).
pub fn mint_hs256(
    secret: &[u8],
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl_secs: u64,
) -> Result<String, TokenError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = Claims {
        sub: subject.to_string(),
        exp: now + ttl_secs,
        iat: Some(now),
        email: email.map(str::to_string),
        name: name.map(str::to_string),
        iss: None,
        aud: None,
    };
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies() {
        let v = JwtVerifier::hs256(SECRET, None, None).unwrap();
        let t = mint_hs256(SECRET, "alice", Some("alice@example.com"), Some("Alice"), 60).unwrap();
        let p = v.verify_header(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(
            p,
            Principal { subject: "alice".into(), email: Some("alice@example.com".into()), name: Some("Alice".into()) }
        );
    }

    #[test]
    fn bad_tokens_are_rejected() {
        let v = JwtVerifier::hs256(SECRET, None, None).unwrap();
        let other = mint_hs256(b"another-secret-another-secret-xx", "alice", None, None, 60).unwrap();
        assert!(v.verify(&other).is_err(), "wrong key");
        let expired = {
            let claims =
                Claims { sub: "a".into(), exp: 1_000, iat: None, email: None, name: None, iss: None, aud: None };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
        };
        assert!(v.verify(&expired).is_err(), "expired");
        let good = mint_hs256(SECRET, "alice", None, None, 60).unwrap();
        let mut tampered = good.clone();
        tampered.insert(good.find('.').unwrap() + 3, 'x');
        assert!(v.verify(&tampered).is_err(), "tampered");
        assert!(matches!(v.verify_header(None), Err(TokenError::Missing)));
        assert!(matches!(v.verify_header(Some("Basic abc")), Err(TokenError::Missing)));
        // "none" algorithm tokens are refused.
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", good.split('.').nth(1).unwrap());
        assert!(v.verify(&none).is_err(), "alg none");
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let v = JwtVerifier::hs256(SECRET, Some("https://issuer"), Some("api")).unwrap();
        let plain = mint_hs256(SECRET, "alice", None, None, 60).unwrap();
        assert!(v.verify(&plain).is_err());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = Claims {
            sub: "alice".into(),
            exp: now + 60,
            iat: None,
            email: None,
            name: None,
            iss: Some("https://issuer".into()),
            aud: Some("api".into()),
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(v.verify(&t).unwrap().subject, "alice");
    }

    #[test]
    fn an_audience_list_is_accepted_when_it_names_ours() {
        let v = JwtVerifier::hs256(SECRET, None, Some("api")).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = serde_json::json!({
            "sub": "alice", "exp": now + 60, "aud": ["userinfo", "api"], "email_verified": true,
            "name": { "given": "Alice" }
        });
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        let p = v.verify(&t).unwrap();
        assert_eq!((p.subject.as_str(), p.name), ("alice", None), "a claim that is not a string is left out");
        let claims = serde_json::json!({ "sub": "alice", "exp": now + 60, "aud": ["userinfo"] });
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(v.verify(&t).is_err(), "not for us");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtVerifier::hs256(b"short", None, None).is_err());
    }
}
