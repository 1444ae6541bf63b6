//! The adapter in-process: API Gateway events (HTTP API 2.0 with a JWT authorizer, with a
//! Lambda authorizer, with none; REST 1.0 with a stage) become the app's requests with the
//! right caller, and the app's responses become proxy responses.

mod common;

use std::collections::HashMap;

use common::event;
use lambda::{Function, Identity, Source};
use lambda_http::Body;
use serde_json::{Value, json};

async fn function(identity: Identity) -> Function {
    Function::new(api::App::new(testkit::pg::db().await.runtime_store()), identity)
}

fn all_sources() -> Identity {
    Identity::with_sources(vec![Source::ApiGatewayJwt, Source::LambdaAuthorizer], None)
}

/// Runs one event through `Function::handle`, as `lambda_http` would hand it over.
async fn call(f: &Function, event: Value) -> (u16, Value, http::HeaderMap) {
    let mut ctx = lambda_http::Context::default();
    ctx.request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into();
    let req = common::request(&event, ctx);
    let res = f.handle(req).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Empty => Value::Null,
        Body::Binary(b) => panic!("JSON must go back as text, got {} bytes of binary", b.len()),
        _ => Value::Null,
    };
    (status, body, headers)
}

#[tokio::test]
async fn http_api_jwt_authorizer_claims_are_the_caller() {
    let f = function(all_sources()).await;
    let (status, body, _) = call(&f, event("apigw-v2-jwt.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["subject"], "3f1c9b2e-8a4d-4e7f-9b6a-2c5d8e1f0a3b");
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["name"], "Alice");
}

/// A subject with a control character (a NUL) is no identity: 401, never a 500; and the same
/// `sub` from a JWT and from a Lambda authorizer is two users.
#[tokio::test]
async fn a_nul_in_sub_is_401_and_issuers_keep_subjects_apart() {
    let f = function(all_sources()).await;
    let mut e = event("apigw-v2-jwt.json", "GET", "/api/me", None);
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("alice\u{0}admin");
    let (status, body, _) = call(&f, e).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));

    let shared = "same-sub-everywhere";
    let mut jwt = event("apigw-v2-jwt.json", "GET", "/api/me", None);
    jwt["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(shared);
    let mut lambda = event("apigw-v2-lambda-authorizer.json", "GET", "/api/me", None);
    lambda["requestContext"]["authorizer"]["lambda"]["sub"] = json!(shared);
    let (_, a, _) = call(&f, jwt).await;
    let (_, b, _) = call(&f, lambda).await;
    assert_eq!((a["user"]["subject"].as_str(), b["user"]["subject"].as_str()), (Some(shared), Some(shared)));
    assert_ne!(a["user"]["id"], b["user"]["id"], "two users");
}

#[tokio::test]
async fn http_api_lambda_authorizer_context_is_the_caller() {
    let f = function(all_sources()).await;
    let (status, body, _) = call(&f, event("apigw-v2-lambda-authorizer.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["subject"], "auth0|65f1c2d3e4b5a6978812");
}

#[tokio::test]
async fn rest_api_payload_1_0_works_and_the_stage_is_not_part_of_the_path() {
    let f = function(all_sources()).await;
    let (status, body, _) = call(&f, event("apigw-v1-rest.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["subject"], "carol-7d2e", "principalId of a REST Lambda authorizer");
    let (status, body, _) =
        call(&f, event("apigw-v1-rest.json", "POST", "/api/tenants", Some(json!({ "name": "Carol's" })))).await;
    assert_eq!(status, 201, "{body}");
    let tenant = body["id"].as_str().unwrap().to_string();
    let (status, body, _) = call(
        &f,
        event("apigw-v1-rest.json", "POST", &format!("/api/tenants/{tenant}/todos"), Some(json!({ "title": "t" }))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) =
        call(&f, event("apigw-v1-rest.json", "GET", &format!("/api/tenants/{tenant}/todos?limit=1"), None)).await;
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
}

#[tokio::test]
async fn a_named_http_api_stage_is_stripped_too() {
    let f = function(all_sources()).await;
    let mut e = event("apigw-v2-jwt.json", "GET", "/api/me", None);
    e["requestContext"]["stage"] = json!("beta");
    e["rawPath"] = json!("/beta/api/me");
    e["requestContext"]["http"]["path"] = json!("/beta/api/me");
    let (status, body, _) = call(&f, e).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn no_identity_means_401_and_headers_are_never_trusted() {
    let f = function(all_sources()).await;
    let (status, body, headers) = call(&f, event("apigw-v2-no-auth.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 401, "an x-user-id header is not an identity: {body}");
    assert_eq!(body["error"]["request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "the Lambda request id");
    assert_eq!(headers["x-request-id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");

    // Closed by default: with no sources configured even verified claims get nobody in.
    let closed = function(Identity::default()).await;
    let (status, _, _) = call(&closed, event("apigw-v2-jwt.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 401);
    // Only the configured source counts.
    let jwt_only = function(Identity::with_sources(vec![Source::ApiGatewayJwt], None)).await;
    let (status, _, _) = call(&jwt_only, event("apigw-v2-lambda-authorizer.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 401);
    let (status, _, _) = call(&jwt_only, event("apigw-v2-no-auth.json", "GET", "/health", None)).await;
    assert_eq!(status, 200, "/health needs no identity");
}

#[tokio::test]
async fn bearer_tokens_are_verified_by_the_function_when_configured() {
    let secret = "a-test-secret-of-at-least-32-bytes!!";
    let env: HashMap<&str, &str> = [
        ("IDENTITY_SOURCES", "bearer_jwt"),
        ("JWT_HS256_SECRET", secret),
        ("JWT_ISSUER", "https://issuer.test"),
        ("JWT_AUDIENCE", "tenant-api"),
    ]
    .into();
    let identity = Identity::from_env(&|k: &str| env.get(k).map(|v| v.to_string())).unwrap();
    let f = function(identity).await;
    let claims = json!({ "sub": "dave", "iss": "https://issuer.test", "aud": "tenant-api" });
    let token =
        api::identity::mint_hs256_claims(secret.as_bytes(), None, claims.as_object().unwrap().clone(), 60).unwrap();
    let foreign = json!({ "sub": "dave", "iss": "https://issuer.test", "aud": "another-app" });
    let foreign =
        api::identity::mint_hs256_claims(secret.as_bytes(), None, foreign.as_object().unwrap().clone(), 60).unwrap();
    let mut e = event("apigw-v2-no-auth.json", "GET", "/api/me", None);
    e["headers"]["authorization"] = json!(format!("Bearer {token}"));
    let (status, body, _) = call(&f, e.clone()).await;
    assert_eq!((status, body["user"]["subject"].as_str()), (200, Some("dave")), "{body}");
    e["headers"]["authorization"] = json!(format!("Bearer {foreign}"));
    assert_eq!(call(&f, e.clone()).await.0, 401, "a token for another audience");
    e["headers"]["authorization"] = json!(format!("Bearer {token}x"));
    assert_eq!(call(&f, e).await.0, 401, "a bad signature");
    // JWT authorizer claims are not a source here.
    assert_eq!(call(&f, event("apigw-v2-jwt.json", "GET", "/api/me", None)).await.0, 401);
}

#[tokio::test]
async fn http_failures_are_responses_with_the_error_shape() {
    let f = function(all_sources()).await;
    let mut e = event("apigw-v2-jwt.json", "POST", "/api/tenants", None);
    e["headers"]["content-type"] = json!("application/json");
    e["body"] = json!("{not json");
    let (status, body, _) = call(&f, e).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));
    let (status, body, headers) = call(&f, event("apigw-v2-jwt.json", "DELETE", "/api/me", None)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")));
    assert_eq!(headers["allow"], "GET");
    let (status, _, _) = call(&f, event("apigw-v2-jwt.json", "GET", "/nope", None)).await;
    assert_eq!(status, 404);
}

#[test]
fn identity_settings_name_the_variable_at_fault() {
    let check = |pairs: &[(&str, &str)], var: &str| {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let err = Identity::from_env(&|k: &str| env.get(k).cloned()).unwrap_err().to_string();
        assert!(err.contains(var), "{pairs:?}: {err}");
    };
    check(&[("IDENTITY_SOURCES", "apigw_jwt,header")], "IDENTITY_SOURCES");
    // bearer_jwt refuses to start without an issuer and an audience, naming them...
    let secret = ("JWT_HS256_SECRET", "a-test-secret-of-at-least-32-bytes!!");
    check(&[("IDENTITY_SOURCES", "bearer_jwt"), secret], "JWT_ISSUER");
    check(&[("IDENTITY_SOURCES", "bearer_jwt"), secret, ("JWT_ISSUER", "https://i")], "JWT_AUDIENCE");
    check(&[("IDENTITY_SOURCES", "bearer_jwt"), secret, ("JWT_AUDIENCE", "a")], "JWT_ISSUER");
    // ...unless the local-development opt-out is set.
    let dev = |extra: &[(&str, &str)]| {
        let mut env: HashMap<String, String> =
            [("IDENTITY_SOURCES", "bearer_jwt"), ("JWT_SKIP_ISSUER_AUDIENCE_CHECK", "true")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Identity::from_env(&|k: &str| env.get(k).cloned())
    };
    assert!(dev(&[secret]).is_ok(), "opted out");
    let keys = |pairs: &[(&str, &str)], var: &str| {
        let err = dev(pairs).unwrap_err().to_string();
        assert!(err.contains(var), "{pairs:?}: {err}");
    };
    keys(&[], "JWT_PUBLIC_KEY");
    keys(&[("JWT_ALGORITHM", "HS256")], "JWT_HS256_SECRET");
    keys(&[("JWT_HS256_SECRET", "short")], "JWT_HS256_SECRET");
    keys(&[("JWT_ALGORITHM", "none"), ("JWT_HS256_SECRET", "x")], "JWT_ALGORITHM");
    keys(&[("JWT_PUBLIC_KEY", "not a key")], "JWT_PUBLIC_KEY");
    keys(&[("JWT_JWKS", "{}")], "JWT_JWKS");
}

#[test]
fn events_are_parsed_as_payload_2_0_or_1_0_and_answered_in_kind() {
    use lambda::event::{ApiEvent, ApiResponse, Origin};
    for (fixture, origin) in [
        ("apigw-v2-jwt.json", Origin::HttpApi),
        ("apigw-v2-lambda-authorizer.json", Origin::HttpApi),
        ("apigw-v2-no-auth.json", Origin::HttpApi),
        ("apigw-v1-rest.json", Origin::Rest),
    ] {
        let bytes =
            std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(fixture)).unwrap();
        let (got, req) = ApiEvent::from_slice(&bytes).unwrap().into_request(lambda_http::Context::default());
        assert_eq!(got, origin, "{fixture}");
        assert_eq!(req.method(), "GET", "{fixture}");
        let mut res = http::Response::new(Body::Text("{}".into()));
        res.headers_mut().insert("content-type", "application/json".parse().unwrap());
        res.headers_mut().append("set-cookie", "a=1".parse().unwrap());
        let json = serde_json::to_value(ApiResponse::new(got, res)).unwrap();
        assert_eq!(json["statusCode"], 200);
        assert_eq!(json["body"], "{}");
        assert_eq!(json["isBase64Encoded"], false);
        match origin {
            Origin::HttpApi => {
                assert_eq!(json["headers"]["content-type"], "application/json");
                assert_eq!(json["cookies"], json!(["a=1"]), "HTTP APIs take cookies in their own field");
            }
            Origin::Rest => assert_eq!(json["multiValueHeaders"]["content-type"], json!(["application/json"])),
        }
    }
    assert!(ApiEvent::from_slice(br#"{"hello": "world"}"#).is_err());
    assert!(ApiEvent::from_slice(b"not json").is_err());
}

/// Browsers preflight cross-origin calls with `OPTIONS` and no credentials: with allowed origins
/// configured, the function answers 204 with the CORS headers before asking for an identity,
/// whatever the identity sources (none, or an authorizer's claims).
#[tokio::test]
async fn preflights_from_allowed_origins_get_204_and_the_cors_headers() {
    let cors = api::Cors::parse("https://app.example.com").unwrap();
    for identity in [Identity::default(), all_sources()] {
        let closed = identity.is_closed();
        let f = Function::new(api::App::new(testkit::pg::db().await.runtime_store()).with_cors(cors.clone()), identity);
        let preflight = |origin: &str| {
            let mut e = event(
                "apigw-v2-no-auth.json",
                "OPTIONS",
                "/api/tenants/b1f2c3d4-0000-4000-8000-000000000001/todos",
                None,
            );
            e["headers"]["origin"] = json!(origin);
            e["headers"]["access-control-request-method"] = json!("POST");
            e["headers"]["access-control-request-headers"] = json!("authorization, content-type");
            e
        };
        let (status, _, headers) = call(&f, preflight("https://app.example.com")).await;
        assert_eq!(status, 204, "closed identity: {closed}");
        assert_eq!(headers["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(headers["access-control-allow-methods"], "GET, POST");
        assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        assert!(headers.contains_key("access-control-max-age"));

        let (status, _, headers) = call(&f, preflight("https://evil.example.com")).await;
        assert_eq!(status, 204);
        assert!(!headers.contains_key("access-control-allow-origin"), "another origin gets no CORS headers");
        assert!(!headers.contains_key("access-control-allow-methods"));

        // A real request from the allowed origin carries Access-Control-Allow-Origin.
        let mut e = event("apigw-v2-jwt.json", "GET", "/api/me", None);
        e["headers"]["origin"] = json!("https://app.example.com");
        let (status, _, headers) = call(&f, e).await;
        assert_eq!(status, if closed { 401 } else { 200 });
        assert_eq!(headers["access-control-allow-origin"], "https://app.example.com");
    }
    // Without allowed origins, OPTIONS is just a method the routes do not answer.
    let f = function(all_sources()).await;
    let mut e = event("apigw-v2-no-auth.json", "OPTIONS", "/api/me", None);
    e["headers"]["origin"] = json!("https://app.example.com");
    e["headers"]["access-control-request-method"] = json!("GET");
    let (status, _, headers) = call(&f, e).await;
    assert_eq!(status, 405);
    assert!(!headers.contains_key("access-control-allow-origin"));
}
