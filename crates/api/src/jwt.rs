//! Bearer JWTs that the function verifies itself: signature (by the key the token's `kid`
//! names, so that keys can be rotated without downtime), `exp`, `nbf`, and the issuer and
//! audience when configured.

use std::fmt;
#[cfg(any(test, feature = "test-util"))]
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
#[cfg(any(test, feature = "test-util"))]
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};

use crate::Principal;

/// Why a bearer token was not accepted. Logged at debug level, never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("token rejected: {0}")]
    Rejected(#[from] jsonwebtoken::errors::Error),
    #[error("no verification key for this token (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("the token's sub claim is missing or not a usable subject")]
    Subject,
    #[error("key: {0}")]
    Key(String),
}

/// One key that may sign tokens: its id (`kid`), algorithm and public key or secret.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// An HS256 shared secret (at least 32 bytes).
    pub fn hs256(kid: Option<&str>, secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < 32 {
            return Err(TokenError::Key("an HS256 secret must be at least 32 bytes".into()));
        }
        Ok(Self { kid: kid.map(str::to_string), algorithm: Algorithm::HS256, key: DecodingKey::from_secret(secret) })
    }

    /// An RS256 or ES256 public key in PEM.
    pub fn pem(kid: Option<&str>, algorithm: &str, pem: &[u8]) -> Result<Self, TokenError> {
        let (alg, key) = match algorithm {
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
            "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
            other => {
                return Err(TokenError::Key(format!("unsupported algorithm {other:?}; use RS256 or ES256")));
            }
        };
        let key = key.map_err(|e| TokenError::Key(format!("public key is not a valid PEM {algorithm} key: {e}")))?;
        Ok(Self { kid: kid.map(str::to_string), algorithm: alg, key })
    }

    /// Every key of a JSON Web Key Set (what an identity provider publishes at its `jwks_uri`).
    /// Each key needs a `kid` and an `alg` of RS256, ES256 or HS256.
    pub fn from_jwks(json: &str) -> Result<Vec<Self>, TokenError> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| TokenError::Key(format!("not a JWKS document: {e}")))?;
        if set.keys.is_empty() {
            return Err(TokenError::Key("the JWKS has no keys".into()));
        }
        set.keys
            .iter()
            .map(|jwk| {
                let kid = jwk.common.key_id.clone().ok_or_else(|| TokenError::Key("a JWKS key has no kid".into()))?;
                let alg = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                    .filter(|a| matches!(a, Algorithm::RS256 | Algorithm::ES256 | Algorithm::HS256))
                    .ok_or_else(|| TokenError::Key(format!("JWKS key {kid:?}: alg must be RS256, ES256 or HS256")))?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::Key(format!("JWKS key {kid:?}: {e}")))?;
                Ok(Self { kid: Some(kid), algorithm: alg, key })
            })
            .collect()
    }
}

/// Verifies bearer JWTs against a set of keys; `exp` and `sub` required, `nbf` checked when
/// present, `iss` and `aud` required and checked when configured.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Vec<(VerifyKey, Validation)>,
    /// The users of these tokens are keyed on this issuer (see [`Principal::jwt_issuer`]).
    issuer: Option<String>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self.keys.iter().map(|(k, _)| k).collect();
        f.debug_struct("JwtVerifier").field("keys", &keys).field("issuer", &self.issuer).finish()
    }
}

impl JwtVerifier {
    /// One HS256 secret without a `kid`.
    pub fn hs256(secret: &[u8], issuer: Option<&str>, audience: Option<&str>) -> Result<Self, TokenError> {
        Self::new(vec![VerifyKey::hs256(None, secret)?], issuer, audience)
    }

    /// One RS256 or ES256 public key (PEM) without a `kid`.
    pub fn public_key(
        algorithm: &str,
        pem: &[u8],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, TokenError> {
        Self::new(vec![VerifyKey::pem(None, algorithm, pem)?], issuer, audience)
    }

    /// Several keys. A token names its key with `kid`; a token without one is accepted only
    /// when there is exactly one key.
    pub fn new(keys: Vec<VerifyKey>, issuer: Option<&str>, audience: Option<&str>) -> Result<Self, TokenError> {
        if keys.is_empty() {
            return Err(TokenError::Key("no verification key".into()));
        }
        let keys = keys
            .into_iter()
            .map(|k| {
                let mut v = Validation::new(k.algorithm);
                v.leeway = 30;
                v.validate_nbf = true;
                // A configured issuer or audience must be present in the token, not merely
                // match when present.
                let mut required = vec!["exp", "sub"];
                if let Some(iss) = issuer {
                    v.set_issuer(&[iss]);
                    required.push("iss");
                }
                match audience {
                    Some(aud) => {
                        v.set_audience(&[aud]);
                        required.push("aud");
                    }
                    None => v.validate_aud = false,
                }
                v.set_required_spec_claims(&required);
                (k, v)
            })
            .collect();
        Ok(Self { keys, issuer: issuer.map(str::to_string) })
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
        let header = jsonwebtoken::decode_header(token)?;
        let (key, validation) = match &header.kid {
            Some(kid) => self.keys.iter().find(|(k, _)| k.kid.as_deref() == Some(kid.as_str())),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or_else(|| TokenError::UnknownKey(header.kid.clone()))?;
        // The validation allows only this key's algorithm: a token cannot pick another.
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)?;
        let c = data.claims;
        // Identity claims that are not strings are left out; `email_verified` may be a boolean.
        let issuer = Principal::jwt_issuer(c.get("iss").and_then(Value::as_str));
        Principal::from_claims(issuer, |k| match c.get(k) {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Bool(true)) => Some("true"),
            _ => None,
        })
        .ok_or(TokenError::Subject)
    }
}

/// Signs an HS256 token for local development and tests (`devserver token`): `claims` plus
/// `exp` (now + `ttl_secs`) and `iat`; `kid` in the header when given.
#[cfg(any(test, feature = "test-util"))]
pub fn mint_hs256_claims(
    secret: &[u8],
    kid: Option<&str>,
    mut claims: Map<String, Value>,
    ttl_secs: u64,
) -> Result<String, TokenError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    claims.entry("exp").or_insert(Value::from(now + ttl_secs));
    claims.entry("iat").or_insert(Value::from(now));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_string);
    Ok(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))?)
}

/// [`mint_hs256_claims`] with the usual identity claims.
#[cfg(any(test, feature = "test-util"))]
pub fn mint_hs256(
    secret: &[u8],
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl_secs: u64,
) -> Result<String, TokenError> {
    let mut claims = Map::new();
    claims.insert("sub".into(), subject.into());
    if let Some(email) = email {
        claims.insert("email".into(), email.into());
    }
    if let Some(name) = name {
        claims.insert("name".into(), name.into());
    }
    mint_hs256_claims(secret, None, claims, ttl_secs)
}
