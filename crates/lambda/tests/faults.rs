//! Reliability under faults, through the IAM-auth stand-in and the Lambda adapter: each
//! scenario asserts the status, the JSON error shape, the time taken and what the database
//! holds afterwards. Timeouts are scaled down (a 1.5 s connect timeout stands for 30 s).

mod common;
#[path = "faults/rig.rs"]
mod rig;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use db_auth::{ManualClock, SystemClock};
use serde_json::json;

use rig::{CONNECT_TIMEOUT, Rig, tenant};

#[tokio::test]
async fn s01_database_down_at_the_first_request() {
    let rig = Rig::new().await;
    rig.standin.set_refuse_connections(true);
    let r = rig.call("POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    r.unavailable();
    assert!(r.took < CONNECT_TIMEOUT, "503 within the connect timeout: {:?}", r.took);
    assert_eq!(rig.count("SELECT count(*) FROM tenants").await, 0, "nothing written");
    assert_eq!(rig.standin.accepted_logins(), 0);
}

#[tokio::test]
async fn s02_slow_resume_shorter_than_the_connect_timeout() {
    let rig = Rig::new().await;
    rig.standin.set_delay(Duration::from_millis(700));
    let r = rig.call("POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.took >= Duration::from_millis(700) && r.took < CONNECT_TIMEOUT, "{:?}", r.took);
    assert_eq!(rig.count("SELECT count(*) FROM tenants").await, 1);
}

#[tokio::test]
async fn s03_slow_resume_longer_than_the_connect_timeout_then_back() {
    let rig = Rig::new().await;
    rig.standin.set_delay(Duration::from_secs(4));
    let r = rig.call("POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    r.unavailable();
    assert!(
        r.took >= CONNECT_TIMEOUT && r.took < CONNECT_TIMEOUT + Duration::from_millis(700),
        "at the timeout: {:?}",
        r.took
    );
    assert_eq!(rig.count("SELECT count(*) FROM tenants").await, 0);
    // The database is back; after the short backoff the next request succeeds.
    rig.standin.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = rig.call("POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(rig.count("SELECT count(*) FROM tenants").await, 1);
}

#[tokio::test]
async fn s04_connection_dropped_while_idle() {
    let rig = Rig::new().await;
    let t = tenant(&rig).await;
    let todos = format!("/api/tenants/{t}/todos");
    // A frozen Lambda thawing finds its connection gone: a read, then a write.
    rig.standin.drop_sessions();
    let r = rig.call("GET", &todos, None).await;
    assert_eq!(r.status, 200, "no error reaches the client: {r:?}");
    rig.standin.drop_sessions();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = rig.call("POST", &todos, Some(json!({ "title": "after the thaw" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, 1);
    assert_eq!(rig.standin.accepted_logins(), 3, "a fresh connection each time");
}

#[tokio::test]
async fn s05_connection_dropped_in_the_middle_of_a_write() {
    let rig = Rig::new().await;
    let t = tenant(&rig).await;
    let todos = format!("/api/tenants/{t}/todos");
    // Hold the write inside the database: a lock that the INSERT waits for.
    let admin = rig.db.admin().await;
    admin.batch_execute("BEGIN; LOCK TABLE todos IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let write = rig.call("POST", &todos, Some(json!({ "title": "in flight" })));
    let drop_it = async {
        let watcher = rig.db.admin().await;
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_runtime' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rig.standin.drop_sessions();
    };
    let (r, ()) = tokio::join!(write, drop_it);
    r.unavailable();
    assert!(r.took < Duration::from_secs(5), "{:?}", r.took);
    admin.batch_execute("ROLLBACK").await.unwrap();
    // Either fully committed or absent: never half a row, never a duplicate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = rig.count("SELECT count(*) FROM todos WHERE title = 'in flight' AND complete = false").await;
    assert!(n == 0 || n == 1, "{n}");
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, n);
    let r = rig.call("GET", &todos, None).await;
    assert_eq!(r.status, 200, "the next request succeeds: {r:?}");
}

#[tokio::test]
async fn s07_cached_token_expired_when_a_reconnect_is_needed() {
    let clock = ManualClock::new(SystemTime::now());
    let rig = Rig::with_clock(Arc::new(clock.clone())).await;
    let t = tenant(&rig).await;
    assert_eq!(rig.cache.signings(), 1);
    clock.advance(Duration::from_secs(20 * 60));
    rig.standin.drop_sessions();
    let r = rig.call("GET", &format!("/api/tenants/{t}"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(rig.cache.signings(), 2, "a new token was signed");
    assert_eq!(rig.standin.accepted_logins(), 2, "and accepted");
    assert_eq!(rig.standin.rejected_logins(), 0);
}

#[tokio::test]
async fn s08_certificate_from_another_ca_or_for_another_host() {
    let other = Rig::new().await;
    for (what, expected) in
        [("another CA", "not signed by a trusted CA"), ("another host", "not valid for this host name")]
    {
        let other_ca = other.standin.ca_pem().as_bytes().to_vec();
        let rig = Rig::build(Arc::new(SystemClock), move |cfg| match what {
            "another CA" => cfg.tls = store::TlsMode::VerifyFull(store::CaSource::Pem(other_ca)),
            _ => cfg.host = "db.elsewhere.internal".into(),
        })
        .await;
        let (guard, logs) = common::capture_logs("debug");
        let r = rig.call("GET", "/api/me", None).await;
        drop(guard);
        let logs = logs.text();
        r.unavailable();
        assert!(r.took < Duration::from_secs(1), "{what}: {:?}", r.took);
        assert!(logs.contains(expected), "{what}: the log says why: {logs}");
        assert_eq!(rig.standin.accepted_logins() + rig.standin.rejected_logins(), 0, "{what}: no token was sent");
        assert_eq!(rig.count("SELECT count(*) FROM users").await, 0);
    }
}

#[tokio::test]
async fn s09_statement_longer_than_the_statement_timeout() {
    let rig = Rig::build(Arc::new(SystemClock), |cfg| cfg.statement_timeout = Duration::from_millis(500)).await;
    let t = tenant(&rig).await;
    let todos = format!("/api/tenants/{t}/todos");
    let connects = rig.connects();
    let admin = rig.db.admin().await;
    admin.batch_execute("BEGIN; LOCK TABLE todos IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let r = rig.call("POST", &todos, Some(json!({ "title": "blocked" }))).await;
    admin.batch_execute("ROLLBACK").await.unwrap();
    r.unavailable();
    assert!(r.took >= Duration::from_millis(500) && r.took < Duration::from_secs(2), "{:?}", r.took);
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, 0);
    let r = rig.call("POST", &todos, Some(json!({ "title": "after" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(rig.connects(), connects, "the same connection is still usable");
}

#[tokio::test]
async fn s10_login_refused_without_a_retry_storm() {
    let rig = Rig::new().await;
    rig.standin.set_refuse_logins(true);
    let started = Instant::now();
    let mut answers = Vec::new();
    while started.elapsed() < Duration::from_secs(1) {
        answers.push(rig.call("GET", "/api/me", None).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for a in &answers {
        a.unavailable();
        assert!(a.took < Duration::from_millis(500), "quick: {:?}", a.took);
    }
    let attempts = rig.standin.connections();
    assert!(answers.len() >= 20, "{} requests", answers.len());
    // Backoff 200 ms, 400 ms, 800 ms...: a second of requests makes at most 4 attempts.
    assert!((1..=4).contains(&attempts), "{attempts} login attempts for {} requests", answers.len());
    assert!(rig.cache.signings() <= attempts, "signings {} bounded by attempts {attempts}", rig.cache.signings());
    assert_eq!(rig.standin.rejected_logins(), attempts);
    assert!(rig.standin.last_rejection().unwrap().contains("refused"));
    // Access restored: the next attempt after the backoff gets in.
    rig.standin.set_refuse_logins(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = rig.call("GET", "/api/me", None).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// A login slower than the request's deadline (scaled down: a 3 s deadline stands for API
/// Gateway's 30 s, with the 30 s connect timeout still longer): the client hears our 503 before
/// the deadline, and the connect goes on, so the next request finds the connection ready.
#[tokio::test]
async fn s11_a_login_slower_than_the_request_deadline_serves_the_next_request() {
    let mut rig = Rig::build(Arc::new(SystemClock), |cfg| cfg.connect_timeout = Duration::from_secs(20)).await;
    rig.f = rig.f.clone().with_deadline_margin(Duration::from_millis(500));
    rig.standin.set_delay(Duration::from_secs(5));
    let due = Duration::from_secs(3);
    let r = rig.call_due("GET", "/api/tenants", None, Some(due)).await;
    r.unavailable();
    assert!(r.took < due, "answered before the deadline: {:?}", r.took);
    assert!(r.took >= Duration::from_millis(2000), "not before it either: {:?}", r.took);

    // The connect that the first request started finishes meanwhile.
    rig.standin.set_delay(Duration::ZERO);
    let started = Instant::now();
    while rig.standin.accepted_logins() == 0 {
        assert!(started.elapsed() < Duration::from_secs(15), "the background connect never logged in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = rig.call_due("GET", "/api/tenants", None, Some(due)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(rig.standin.accepted_logins(), 1, "no new login: the finished connect served this request");
    assert_eq!(rig.connects(), 1);
}

/// With the server's idle_session_timeout (scaled down to 1 s), an idle instance's session ends
/// on the server's side, so nothing keeps the cluster awake; the next request, a write,
/// reconnects without an error reaching the client, with exactly one new login.
#[tokio::test]
async fn s12_an_idle_session_is_closed_by_the_server_and_the_next_write_reconnects() {
    let rig = Rig::build(Arc::new(SystemClock), |cfg| cfg.idle_session_timeout = Some(Duration::from_secs(1))).await;
    let tenant = tenant(&rig).await;
    assert_eq!(rig.standin.accepted_logins(), 1);
    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_runtime'";
    assert_eq!(rig.count(sessions).await, 1);
    let started = Instant::now();
    while rig.count(sessions).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the server never closed the idle session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = rig.call("POST", &format!("/api/tenants/{tenant}/todos"), Some(json!({ "title": "after a pause" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(rig.standin.accepted_logins(), 2, "exactly one new login");
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, 1);
}

/// The connection drops while the server commits a write sent with an `Idempotency-Key` (a
/// slow COMMIT, held by a deferred trigger): the client cannot know whether it happened. Its
/// retry with the same key gets the original answer, and the write is there exactly once.
#[tokio::test]
async fn s13_a_connection_lost_at_commit_then_a_retry_with_the_key_answers_once() {
    let rig = Rig::new().await;
    let t = tenant(&rig).await;
    let todos = format!("/api/tenants/{t}/todos");
    let admin = rig.db.admin().await;
    admin
        .batch_execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON todos
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        )
        .await
        .unwrap();
    let body = json!({ "title": "exactly once" });
    let write = rig.call_keyed("POST", &todos, Some(body.clone()), "retry-me");
    let drop_at_commit = async {
        let watcher = rig.db.admin().await;
        let started = Instant::now();
        loop {
            let sleeping: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_runtime' AND wait_event = 'PgSleep'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if sleeping > 0 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the write never reached its COMMIT");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rig.standin.drop_sessions();
    };
    let ((lost, _), ()) = tokio::join!(write, drop_at_commit);
    lost.unavailable();
    // The server finishes the commit although the client is gone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, 1, "the write committed");

    let (retry, replayed) = rig.call_keyed("POST", &todos, Some(body.clone()), "retry-me").await;
    assert_eq!((retry.status, replayed), (201, true), "{retry:?}");
    assert_eq!(retry.body["title"], "exactly once");
    let id: uuid::Uuid = admin.query_one("SELECT id FROM todos", &[]).await.unwrap().get(0);
    assert_eq!(retry.body["id"], id.to_string(), "the answer is the original write's");
    let (again, replayed) = rig.call_keyed("POST", &todos, Some(body), "retry-me").await;
    assert_eq!((again.status, replayed, &again.body), (201, true, &retry.body));
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, 1, "exactly once");
}

/// With a maximum connection age (Aurora DSQL ends connections at 60 minutes; scaled down to
/// 300 ms here), a long run of requests crosses several replacements without an error reaching
/// a client: a connection is replaced at checkout, never in the middle of a request.
#[tokio::test]
async fn s14_connections_are_replaced_at_their_maximum_age_between_requests() {
    let rig = Rig::build(Arc::new(SystemClock), |cfg| cfg.max_connection_age = Some(Duration::from_millis(300))).await;
    let t = tenant(&rig).await;
    let todos = format!("/api/tenants/{t}/todos");
    let started = Instant::now();
    let mut n: i64 = 0;
    while started.elapsed() < Duration::from_millis(1600) {
        let r = if n % 2 == 0 {
            rig.call("POST", &todos, Some(json!({ "title": format!("todo {n}") }))).await
        } else {
            rig.call("GET", &todos, None).await
        };
        assert!(r.status < 300, "request {n}: {r:?}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rig.standin.accepted_logins() >= 4, "replaced several times: {} logins", rig.standin.accepted_logins());
    assert_eq!(rig.count("SELECT count(*) FROM todos").await, (n + 1) / 2);
}

/// Aurora DSQL's optimistic concurrency, played by the stand-in: 30% of all COMMITs fail with
/// 40001 (OC000) and are rolled back. A run of mixed requests sees no 5xx but 503s with
/// `Retry-After` after the retries ran out, and every acknowledged write is in the database
/// exactly once; every refused one is absent.
#[tokio::test]
async fn s15_a_third_of_commits_conflicting_loses_no_acknowledged_write() {
    let rig = Rig::new().await;
    let t = tenant(&rig).await;
    let todos = format!("/api/tenants/{t}/todos");
    rig.standin.drop_sessions();
    rig.standin.set_commit_failure_rate(0.3);
    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    for n in 0..60 {
        let id = uuid::Uuid::new_v4();
        let r = match n % 3 {
            0 | 1 => rig.call("POST", &todos, Some(json!({ "title": format!("todo {n}"), "id": id }))).await,
            _ => rig.call("GET", &todos, None).await,
        };
        match (r.status, n % 3) {
            (201, _) => acknowledged.push(id),
            (200, 2) => {}
            (503, m) => {
                r.unavailable();
                if m != 2 {
                    refused.push(id);
                }
            }
            _ => panic!("request {n}: {r:?}"),
        }
    }
    assert!(rig.standin.failed_commits() > 10, "conflicts happened: {}", rig.standin.failed_commits());
    assert!(rig.f.app().store().stats().retries > 10, "and were retried");
    rig.standin.set_commit_failure_rate(0.0);
    let admin = rig.db.admin().await;
    for (ids, want) in [(&acknowledged, 1_i64), (&refused, 0)] {
        for id in ids {
            let n: i64 = admin.query_one("SELECT count(*) FROM todos WHERE id = $1", &[id]).await.unwrap().get(0);
            assert_eq!(n, want, "todo {id}");
        }
    }
    let total: i64 = admin.query_one("SELECT count(*) FROM todos", &[]).await.unwrap().get(0);
    assert_eq!(total as usize, acknowledged.len(), "nothing else was written");
    assert!(acknowledged.len() >= 30, "most writes went through: {}", acknowledged.len());
}
