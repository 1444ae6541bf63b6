//! Secrets never reach logs or response bodies: a full run through the IAM path, including
//! failures (rejected, expired and refused logins, a wrong CA, a timeout), with every log line
//! captured at the most verbose level, in-process and from the real `bootstrap` process.

mod common;

use std::{
    io::Read,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, SystemTime},
};

use common::{event, status_and_body};
use db_auth::{ManualClock, SystemClock};
use lambda::{Function, Identity, Source};
use lambda_http::Body;
use runtime_standin::{Outcome, RuntimeApi};
use serde_json::json;
use store::{PasswordSource, Secret, Store};
use testkit::iam;

/// What must never appear: tokens (their SigV4 parts), the signing secret, the session token,
/// passwords, connection strings with credentials.
fn assert_clean(what: &str, text: &str) {
    let creds = iam_standin::test_credentials();
    for needle in [
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "Action=connect",
        creds.secret_access_key(),
        creds.session_token().unwrap(),
        testkit::pg::RUNTIME_PASSWORD,
        "postgres://",
        "postgresql://",
        "password=",
    ] {
        let at = text.find(needle).map(|i| &text[text[..i].rfind('\n').map_or(0, |n| n + 1)..]).unwrap_or("");
        assert!(!text.contains(needle), "{what} contains {needle:?}: {}", &at[..at.len().min(600)]);
    }
}

async fn call(f: &Function, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let req = common::request(&event("apigw-v2-jwt.json", method, path, body), lambda_http::Context::default());
    let res = f.handle(req).await;
    let text = match res.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (res.status().as_u16(), text)
}

fn function(store: Store) -> Function {
    Function::new(api::App::new(store), Identity::with_sources(vec![Source::ApiGatewayJwt], None))
}

#[tokio::test]
async fn no_secret_in_logs_or_bodies_in_process() {
    // The function's own filter at its most verbose.
    let (_guard, captured) = common::capture_logs("trace");
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let cfg = iam::config(&db, &standin);
    let mut bodies = String::new();
    let mut statuses = Vec::new();

    // Success, then a refused login, then a wrong CA.
    let f = function(Store::new(cfg.clone(), iam::tokens(&cfg, iam::token_cache(Arc::new(SystemClock)))).unwrap());
    for (method, path, body) in [
        ("POST", "/api/tenants", Some(json!({ "name": "Acme" }))),
        ("GET", "/api/me", None),
        ("GET", "/api/tenants", None),
    ] {
        let (s, b) = call(&f, method, path, body).await;
        statuses.push(s);
        bodies.push_str(&b);
    }
    standin.set_refuse_logins(true);
    standin.drop_sessions();
    let (s, b) = call(&f, "GET", "/api/me", None).await;
    statuses.push(s);
    bodies.push_str(&b);
    standin.set_refuse_logins(false);

    // An expired token (the signer's clock is behind) and a tampered one.
    let old = ManualClock::new(SystemTime::now() - Duration::from_secs(30 * 60));
    let f = function(Store::new(cfg.clone(), iam::tokens(&cfg, iam::token_cache(Arc::new(old)))).unwrap());
    let (s, b) = call(&f, "GET", "/api/me", None).await;
    statuses.push(s);
    bodies.push_str(&b);
    let good = db_auth::sign(
        &PasswordSource::token_request(&cfg).unwrap(),
        &iam_standin::test_credentials(),
        SystemTime::now(),
    )
    .unwrap();
    let f = function(
        Store::new(cfg.clone(), PasswordSource::Fixed(Some(Secret::new(good.replace("app_runtime", "app_owner")))))
            .unwrap(),
    );
    let (s, b) = call(&f, "GET", "/api/me", None).await;
    statuses.push(s);
    bodies.push_str(&b);

    // Password login with a wrong password, and a connect timeout.
    let mut pw = db.runtime_config();
    pw.auth = store::Auth::Password(Some(Secret::new(format!("{}-wrong", testkit::pg::RUNTIME_PASSWORD))));
    let f = function(Store::new(pw.clone(), PasswordSource::fixed(&pw).unwrap()).unwrap());
    let (s, b) = call(&f, "GET", "/api/me", None).await;
    statuses.push(s);
    bodies.push_str(&b);
    standin.set_delay(Duration::from_secs(3));
    let mut slow = cfg.clone();
    slow.connect_timeout = Duration::from_millis(500);
    let f = function(Store::new(slow.clone(), iam::tokens(&slow, iam::token_cache(Arc::new(SystemClock)))).unwrap());
    let (s, b) = call(&f, "GET", "/api/me", None).await;
    statuses.push(s);
    bodies.push_str(&b);

    assert_eq!(statuses, [201, 200, 200, 503, 503, 503, 503, 503]);
    let logs = captured.text();
    assert!(logs.contains("login to") && logs.contains("rejected"), "the failures were logged: {logs}");
    assert!(logs.contains("timed out after"), "{logs}");
    assert_clean("the logs", &logs);
    assert_clean("the response bodies", &bodies);
    assert_clean("Debug of the config", &format!("{cfg:?} {pw:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_bootstrap_process_output() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs(iam::function_env(
            &runtime.endpoint(),
            &db,
            &standin,
            &ca,
            &[("IDENTITY_SOURCES", "apigw_jwt"), ("LOG_LEVEL", "trace")],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bodies = String::new();
    let mut ask = async |e| match runtime.call(e, Duration::from_secs(30)).await {
        Some(Outcome::Response(r)) => {
            bodies.push_str(&r.to_string());
            status_and_body(&r).0
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(ask(event("apigw-v2-jwt.json", "GET", "/api/me", None)).await, 200);
    // Events carry secrets of their own: a bearer token in a header, an invitation code in a
    // body (lambda_runtime logs raw events at trace; its target is capped like the AWS SDK's).
    let code = format!("inv_{}", "S3cretC0de".repeat(4).chars().take(43).collect::<String>());
    let mut secretive = event("apigw-v2-jwt.json", "POST", "/api/invitations/accept", Some(json!({ "code": code })));
    secretive["headers"]["authorization"] =
        json!("Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LWJlYXJlcg.dG9rZW4tc2lnbmF0dXJl");
    assert_eq!(ask(secretive).await, 404);
    standin.set_refuse_logins(true);
    standin.drop_sessions();
    assert_eq!(ask(event("apigw-v2-jwt.json", "GET", "/api/me", None)).await, 503);
    let _ = child.kill();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = child.wait();
    assert!(out.contains("\"request\""), "the process logged requests: {out}");
    assert!(out.contains("rejected"), "and the refused login: {out}");
    assert_clean("the process output", &out);
    assert_clean("the responses", &bodies);
    for secret in ["S3cretC0de", "c2VjcmV0LWJlYXJlcg"] {
        assert!(!out.contains(secret), "an event's secret in the process output");
    }
}

/// Invitation codes are secrets too: shown once, in the answer that creates the invitation, and
/// never in a log line, at the most verbose level, whether sent with an Idempotency-Key or not,
/// accepted or not.
#[tokio::test]
async fn invitation_codes_never_reach_the_logs() {
    let (_guard, captured) = common::capture_logs("trace");
    let db = testkit::pg::db().await;
    let f = function(db.runtime_store());
    let (s, tenant) = call(&f, "POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    assert_eq!(s, 201);
    let tenant: serde_json::Value = serde_json::from_str(&tenant).unwrap();
    let invitations = format!("/api/tenants/{}/invitations", tenant["id"].as_str().unwrap());
    let mut codes = Vec::new();
    for key in [None, Some("invite-once")] {
        let mut e = event("apigw-v2-jwt.json", "POST", &invitations, Some(json!({ "role": "viewer" })));
        if let Some(k) = key {
            e["headers"]["idempotency-key"] = json!(k);
        }
        let res = f.handle(common::request(&e, lambda_http::Context::default())).await;
        let (status, body) = match res.body() {
            Body::Text(t) => (res.status().as_u16(), serde_json::from_str::<serde_json::Value>(t).unwrap()),
            _ => panic!("no body"),
        };
        assert_eq!(status, 201);
        codes.push(body["code"].as_str().unwrap().to_string());
    }
    // Accepting one (as another user), and a wrong one.
    let accept = |code: &str| {
        let mut e =
            event("apigw-v2-lambda-authorizer.json", "POST", "/api/invitations/accept", Some(json!({ "code": code })));
        e["headers"]["content-type"] = json!("application/json");
        e
    };
    let f2 =
        Function::new(api::App::new(db.runtime_store()), Identity::with_sources(vec![Source::LambdaAuthorizer], None));
    let ok = f2.handle(common::request(&accept(&codes[0]), lambda_http::Context::default())).await;
    assert_eq!(ok.status(), 200);
    let wrong = f2.handle(common::request(&accept(&format!("{}x", codes[1])), lambda_http::Context::default())).await;
    assert_eq!(wrong.status(), 404);
    let logs = captured.text();
    assert!(logs.contains("\"request\"") || logs.contains("request"), "the run was logged");
    for code in &codes {
        assert!(!logs.contains(&code[4..]), "an invitation code in the logs");
    }
}
