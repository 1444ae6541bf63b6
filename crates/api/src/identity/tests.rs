//! Identities from JWTs and from an authorizer's claims.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER: &[u8] = b"another-secret-another-secret-xx";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn sign(secret: &[u8], kid: Option<&str>, v: Value) -> String {
    mint_hs256_claims(secret, kid, claims(v), 60).unwrap()
}

#[test]
fn a_minted_token_verifies() {
    let v = JwtVerifier::hs256(SECRET, None, None).unwrap();
    let t = mint_hs256(SECRET, "alice", Some("alice@example.com"), Some("Alice"), 60).unwrap();
    let p = v.verify_header(Some(&format!("Bearer {t}"))).unwrap();
    assert_eq!(
        p,
        Principal {
            issuer: "jwt:".into(),
            subject: "alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: false,
            name: Some("Alice".into())
        }
    );
}

#[test]
fn identities_are_bounded_in_bytes_not_characters() {
    let wide = "é".repeat(128); // 128 characters, 256 bytes
    assert!(Principal::from_claims("jwt:x".into(), |k| (k == "sub").then_some(wide.as_str())).is_none());
    let narrow = "é".repeat(127);
    assert!(Principal::from_claims("jwt:x".into(), |k| (k == "sub").then_some(narrow.as_str())).is_some());
    let long_issuer = format!("jwt:{}", "ü".repeat(255)); // 259 characters, 514 bytes
    assert!(Principal::from_claims(long_issuer, |k| (k == "sub").then_some("alice")).is_none());
}

#[test]
fn only_the_legacy_issuer_claims_legacy_user_rows() {
    let p = Principal {
        issuer: "jwt:https://a.example".into(),
        subject: "alice".into(),
        email: None,
        email_verified: false,
        name: None,
    };
    assert!(!p.new_user(None).claims_legacy, "nobody without LEGACY_USER_ISSUER");
    assert!(!p.new_user(Some("jwt:https://b.example")).claims_legacy, "not another issuer");
    assert!(p.new_user(Some("jwt:https://a.example")).claims_legacy);
}

#[test]
fn bad_tokens_are_rejected() {
    let v = JwtVerifier::hs256(SECRET, None, None).unwrap();
    let other = mint_hs256(OTHER, "alice", None, None, 60).unwrap();
    assert!(v.verify(&other).is_err(), "wrong key");
    let expired = sign(SECRET, None, json!({ "sub": "a", "exp": 1_000 }));
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
fn not_before_is_checked() {
    let v = JwtVerifier::hs256(SECRET, None, None).unwrap();
    let early = sign(SECRET, None, json!({ "sub": "alice", "nbf": now() + 600 }));
    assert!(v.verify(&early).is_err(), "a token before its nbf");
    let ok = sign(SECRET, None, json!({ "sub": "alice", "nbf": now() - 5 }));
    assert_eq!(v.verify(&ok).unwrap().subject, "alice");
}

#[test]
fn keys_are_chosen_by_kid_so_they_can_be_rotated() {
    let keys =
        vec![VerifyKey::hs256(Some("2026-10"), SECRET).unwrap(), VerifyKey::hs256(Some("2026-11"), OTHER).unwrap()];
    let v = JwtVerifier::new(keys, None, None).unwrap();
    let old = sign(SECRET, Some("2026-10"), json!({ "sub": "alice" }));
    let new = sign(OTHER, Some("2026-11"), json!({ "sub": "bob" }));
    assert_eq!(v.verify(&old).unwrap().subject, "alice");
    assert_eq!(v.verify(&new).unwrap().subject, "bob");
    let crossed = sign(SECRET, Some("2026-11"), json!({ "sub": "mallory" }));
    assert!(v.verify(&crossed).is_err(), "a kid names its key; another key's signature fails");
    let unknown = sign(SECRET, Some("2025-01"), json!({ "sub": "mallory" }));
    assert!(matches!(v.verify(&unknown), Err(TokenError::UnknownKey(_))));
    let no_kid = sign(SECRET, None, json!({ "sub": "alice" }));
    assert!(v.verify(&no_kid).is_err(), "with several keys, a token must name one");
}

#[test]
fn a_jwks_gives_keys_by_kid() {
    use base64::Engine;
    let k = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwks = json!({ "keys": [
        { "kty": "oct", "kid": "a", "alg": "HS256", "k": k(SECRET) },
        { "kty": "oct", "kid": "b", "alg": "HS256", "k": k(OTHER) },
    ]});
    let v = JwtVerifier::new(VerifyKey::from_jwks(&jwks.to_string()).unwrap(), None, None).unwrap();
    assert_eq!(v.verify(&sign(OTHER, Some("b"), json!({ "sub": "bob" }))).unwrap().subject, "bob");
    assert!(VerifyKey::from_jwks(r#"{"keys":[]}"#).is_err());
    assert!(
        VerifyKey::from_jwks(&json!({ "keys": [{ "kty": "oct", "alg": "HS256", "k": k(SECRET) }] }).to_string())
            .is_err(),
        "kid required"
    );
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let v = JwtVerifier::hs256(SECRET, Some("https://issuer"), Some("api")).unwrap();
    let plain = mint_hs256(SECRET, "alice", None, None, 60).unwrap();
    assert!(v.verify(&plain).is_err());
    let t = sign(SECRET, None, json!({ "sub": "alice", "iss": "https://issuer", "aud": "api" }));
    let p = v.verify(&t).unwrap();
    assert_eq!((p.issuer.as_str(), p.subject.as_str()), ("jwt:https://issuer", "alice"));
}

#[test]
fn an_audience_list_is_accepted_when_it_names_ours() {
    let v = JwtVerifier::hs256(SECRET, None, Some("api")).unwrap();
    let claims = json!({
        "sub": "alice", "exp": now() + 60, "aud": ["userinfo", "api"], "email_verified": true,
        "email": "alice@example.com", "name": { "given": "Alice" }
    });
    let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    let p = v.verify(&t).unwrap();
    assert_eq!((p.subject.as_str(), &p.name), ("alice", &None), "a claim that is not a string is left out");
    assert!(p.email_verified, "a boolean email_verified counts");
    assert_eq!(p.verified_email().unwrap().as_str(), "alice@example.com");
    let t = sign(SECRET, None, json!({ "sub": "alice", "aud": ["userinfo"] }));
    assert!(v.verify(&t).is_err(), "not for us");
}

#[test]
fn subjects_are_exact_and_clean() {
    let get = |sub: &'static str| move |k: &str| (k == "sub").then_some(sub);
    assert_eq!(Principal::from_claims("i".into(), get(" alice ")).unwrap().subject, " alice ", "not trimmed");
    for bad in ["", "a\0b", "a\nb", "\u{7f}"] {
        assert!(Principal::from_claims("i".into(), get(bad)).is_none(), "{bad:?}");
    }
    assert!(Principal::from_claims("i".into(), |k| (k == "sub").then_some("x".repeat(256).leak() as &str)).is_none());
}

#[test]
fn short_secrets_are_refused() {
    assert!(JwtVerifier::hs256(b"short", None, None).is_err());
}
