//! The IAM path end to end: the API logs in through the stand-in for Aurora's IAM
//! authentication with a signed token over TLS verified against the stand-in's CA.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use api::{App, Principal, RequestId};
use bytes::Bytes;
use db_auth::{ManualClock, SystemClock};
use http::{Request, StatusCode};
use serde_json::Value;
use store::{CaSource, PasswordSource, Secret, Store, TlsMode};
use testkit::iam;

async fn get(app: &App, path: &str) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::get(path).body(Bytes::new()).unwrap();
    req.extensions_mut().insert(Principal::new("jwt:https://issuer.test", "alice"));
    req.extensions_mut().insert(RequestId("iam-test".into()));
    let res = app.handle(req).await;
    let body = if res.body().is_empty() { Value::Null } else { serde_json::from_slice(res.body()).unwrap() };
    (res.status(), res.headers().clone(), body)
}

/// A 503 with the JSON error shape and `Retry-After`, and no secret in it.
fn assert_unavailable(status: StatusCode, headers: &http::HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable");
    assert_eq!(body["error"]["request_id"], "iam-test");
    assert!(headers.contains_key("retry-after"));
    let text = body.to_string();
    assert!(!text.contains("X-Amz") && !text.contains("standin.internal"), "no internals in the body: {text}");
}

#[tokio::test]
async fn the_api_serves_through_the_iam_standin_with_verified_tls() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let cfg = iam::config(&db, &standin);
    let cache = iam::token_cache(Arc::new(SystemClock));
    let app = App::new(Store::new(cfg.clone(), iam::tokens(&cfg, cache.clone())).unwrap());

    let (status, _, body) = get(&app, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["subject"], "alice");
    assert_eq!(standin.accepted_logins(), 1, "the stand-in verified a token and let us in");
    assert_eq!(standin.rejected_logins(), 0);
    assert_eq!(standin.last_user().as_deref(), Some("app_runtime"));
    assert_eq!(cache.signings(), 1);
    let (status, _, _) = get(&app, "/api/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(standin.accepted_logins(), 1, "one pooled connection serves both requests");
}

#[tokio::test]
async fn one_signing_serves_reconnects_inside_the_margin_and_a_new_one_after() {
    let db = testkit::pg::db().await;
    let clock = ManualClock::new(SystemTime::now());
    let standin = iam::standin(&db, Arc::new(clock.clone())).await;
    let cfg = iam::config(&db, &standin);
    let cache = iam::token_cache(Arc::new(clock.clone()));
    let app = App::new(Store::new(cfg.clone(), iam::tokens(&cfg, cache.clone())).unwrap());

    assert_eq!(get(&app, "/api/me").await.0, StatusCode::OK);
    for (advance, logins, signings) in [(0, 2, 1), (2 * 60, 3, 1), (5 * 60, 4, 1), (4 * 60, 5, 2), (60, 6, 2)] {
        clock.advance(Duration::from_secs(advance));
        standin.drop_sessions();
        let (status, _, body) = get(&app, "/api/tenants").await;
        assert_eq!(status, StatusCode::OK, "a dropped connection is replaced without an error: {body}");
        assert_eq!(standin.accepted_logins(), logins, "a new login after the drop");
        assert_eq!(cache.signings(), signings, "signings after moving the clock on by {advance} s");
    }
    assert_eq!(standin.rejected_logins(), 0);
}

#[tokio::test]
async fn an_expired_token_is_rejected_and_the_api_answers_503_quickly() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let cfg = iam::config(&db, &standin);
    // The signer's clock is 20 minutes behind: its "fresh" token expired 5 minutes ago.
    let cache = iam::token_cache(Arc::new(ManualClock::new(SystemTime::now() - Duration::from_secs(20 * 60))));
    let app = App::new(Store::new(cfg.clone(), iam::tokens(&cfg, cache)).unwrap());
    let started = Instant::now();
    let (status, headers, body) = get(&app, "/api/me").await;
    assert!(started.elapsed() < Duration::from_secs(3), "no hang: {:?}", started.elapsed());
    assert_unavailable(status, &headers, &body);
    assert_eq!(standin.rejected_logins(), 1);
    assert_eq!(standin.last_rejection().as_deref(), Some("the token has expired"));
}

#[tokio::test]
async fn a_tampered_token_is_rejected() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let cfg = iam::config(&db, &standin);
    let request = PasswordSource::token_request(&cfg).unwrap();
    let good = db_auth::sign(&request, &iam_standin::test_credentials(), SystemTime::now()).unwrap();
    // Another user (Aurora) or the administrator's action (DSQL), with the signature unchanged.
    let (tampered, why) = match cfg.engine {
        store::Engine::Postgres => (good.replace("DBUser=app_runtime", "DBUser=app_owner"), "signed for user"),
        store::Engine::Dsql => (good.replace("Action=DbConnect&", "Action=DbConnectAdmin&"), "does not log in as"),
    };
    assert_ne!(tampered, good);
    let app = App::new(Store::new(cfg, PasswordSource::Fixed(Some(Secret::new(tampered)))).unwrap());
    let (status, headers, body) = get(&app, "/api/me").await;
    assert_unavailable(status, &headers, &body);
    assert!(standin.last_rejection().unwrap().contains(why), "{:?}", standin.last_rejection());
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_for_another_host_is_refused() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let other = iam::standin(&db, Arc::new(SystemClock)).await;
    let cache = iam::token_cache(Arc::new(SystemClock));

    // Trusting another CA than the one that issued the server's certificate.
    let mut cfg = iam::config(&db, &standin);
    cfg.tls = TlsMode::VerifyFull(CaSource::Pem(other.ca_pem().as_bytes().to_vec()));
    let store = Store::new(cfg.clone(), iam::tokens(&cfg, cache.clone())).unwrap();
    let err = store.warm_up().await.unwrap_err().to_string();
    assert!(err.contains("not signed by a trusted CA"), "{err}");
    let (status, headers, body) = get(&App::new(store), "/api/me").await;
    assert_unavailable(status, &headers, &body);

    // The right CA, but the certificate names another host.
    let mut cfg = iam::config(&db, &standin);
    cfg.host = "db.example.internal".into();
    let store = Store::new(cfg.clone(), iam::tokens(&cfg, cache.clone())).unwrap();
    let err = store.warm_up().await.unwrap_err().to_string();
    assert!(err.contains("not valid for this host name"), "{err}");
    assert_eq!(standin.accepted_logins() + standin.rejected_logins(), 0, "no token was ever sent");
}

#[tokio::test]
async fn a_database_slower_than_the_connect_timeout_gets_503_in_time() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    standin.set_delay(Duration::from_secs(5));
    let mut cfg = iam::config(&db, &standin);
    cfg.connect_timeout = Duration::from_millis(1500);
    let app = App::new(Store::new(cfg.clone(), iam::tokens(&cfg, iam::token_cache(Arc::new(SystemClock)))).unwrap());
    let started = Instant::now();
    let (status, headers, body) = get(&app, "/api/me").await;
    let took = started.elapsed();
    assert_unavailable(status, &headers, &body);
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_millis(2500), "503 at the timeout: {took:?}");
}

/// A role that fails the self-check (here the table owner) is a 500 that says nothing inside,
/// and the failure is remembered: a burst of requests costs one IAM login, not one each
/// (Aurora allows about 200 new IAM connections per second).
#[tokio::test]
async fn a_failing_self_check_is_a_500_and_does_not_log_in_again_for_every_request() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let mut cfg = iam::config(&db, &standin);
    cfg.user = "app_owner".into();
    let cache = iam::token_cache(Arc::new(SystemClock));
    let app = App::new(Store::new(cfg.clone(), iam::tokens(&cfg, cache)).unwrap());
    for _ in 0..20 {
        let (status, headers, body) = get(&app, "/api/me").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"]["code"], "internal");
        assert!(!headers.contains_key("retry-after"), "retrying does not help: an operator must fix the role");
        assert!(!body.to_string().contains("app_owner"), "nothing internal in the body: {body}");
    }
    assert_eq!(standin.accepted_logins(), 1, "one login; the failure is answered from memory afterwards");
    assert_eq!(standin.last_user().as_deref(), Some("app_owner"));
}

/// Aurora DSQL's login through the stand-in in DSQL mode: `DbConnect` tokens for the custom
/// role (no port, service `dsql`), and sessions the server ends at a maximum age (60 minutes on
/// DSQL, 600 ms here). The store replaces its connection before that age (300 ms here), at
/// checkout: a run of reads and writes across several replacements sees no error.
#[tokio::test]
async fn dsql_logins_and_connections_replaced_before_the_server_ends_them() {
    let db = testkit::pg::db_for(store::Engine::Dsql).await;
    let mut config = iam_standin::Config::new(iam::HOST, iam::REGION, iam::upstream(&db.server));
    config.engine = iam_standin::sigv4::Engine::Dsql;
    config.max_session_age = Some(Duration::from_millis(600));
    let standin = iam_standin::Standin::start(config).await.unwrap();
    let mut cfg = iam::config_for(&db, &standin, store::Engine::Dsql);
    cfg.max_connection_age = Some(Duration::from_millis(300));
    let cache = iam::token_cache(Arc::new(SystemClock));
    let app = App::new(Store::new(cfg.clone(), iam::tokens(&cfg, cache)).unwrap());

    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(2000) {
        let (status, _, body) = get(&app, "/api/tenants").await;
        assert_eq!(status, StatusCode::OK, "request {n}: {body}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(standin.rejected_logins(), 0, "{:?}", standin.last_rejection());
    assert!(standin.accepted_logins() >= 4, "replaced several times: {}", standin.accepted_logins());
    assert_eq!(standin.last_user().as_deref(), Some("app_runtime"));
}
