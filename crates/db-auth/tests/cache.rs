//! The token cache: one signing serves reconnects inside the margin, a new one after it (or
//! before the credentials expire), and concurrent callers share one signing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use db_auth::{Credentials, ManualClock, TokenCache, TokenRequest};

/// Credentials that take a while to arrive, counting how often they were asked for.
#[derive(Debug, Clone)]
struct SlowCreds {
    calls: Arc<AtomicU64>,
    expiry: Option<SystemTime>,
}

impl ProvideCredentials for SlowCreds {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), self.expiry, "test"))
        })
    }
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn setup(expiry: Option<SystemTime>) -> (TokenCache, ManualClock, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let clock = ManualClock::new(start());
    let provider = SharedCredentialsProvider::new(SlowCreds { calls: calls.clone(), expiry });
    (TokenCache::with_clock(provider, Arc::new(clock.clone()), db_auth::DEFAULT_MARGIN), clock, calls)
}

fn req() -> TokenRequest {
    TokenRequest::rds("db.example.com", 5432, "app_runtime", "eu-west-1")
}

#[tokio::test]
async fn reuses_a_token_inside_the_margin_and_signs_anew_after_it() {
    let (cache, clock, _) = setup(None);
    let first = cache.token(&req()).await.unwrap();
    clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(cache.token(&req()).await.unwrap(), first, "a reconnect after 2 minutes reuses the token");
    clock.advance(Duration::from_secs(7 * 60));
    assert_eq!(cache.token(&req()).await.unwrap(), first, "still 6 minutes left at 9 minutes");
    assert_eq!(cache.signings(), 1);
    clock.advance(Duration::from_secs(11 * 60));
    let fresh = cache.token(&req()).await.unwrap();
    assert_ne!(fresh, first, "after 20 minutes a reconnect gets a fresh token");
    assert!(fresh.contains("X-Amz-Date=20261118T112640Z"), "signed at the injected time: {fresh}");
    assert_eq!(cache.signings(), 2);
}

#[tokio::test]
async fn credentials_that_expire_first_shorten_the_token_life() {
    let (cache, clock, _) = setup(Some(start() + Duration::from_secs(8 * 60)));
    let first = cache.token(&req()).await.unwrap();
    clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(cache.token(&req()).await.unwrap(), first);
    clock.advance(Duration::from_secs(90));
    cache.token(&req()).await.unwrap();
    assert_eq!(cache.signings(), 2, "5 minutes before the credentials expire, the token is replaced");
}

#[tokio::test]
async fn different_keys_get_different_tokens() {
    let (cache, _, _) = setup(None);
    let a = cache.token(&req()).await.unwrap();
    let b = cache.token(&TokenRequest::rds("db.example.com", 5432, "app_owner", "eu-west-1")).await.unwrap();
    let c = cache.token(&TokenRequest::dsql("x.dsql.us-east-1.on.aws", "us-east-1", false)).await.unwrap();
    assert!(a != b && b != c);
    assert_eq!(cache.signings(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_signing() {
    let (cache, _, calls) = setup(None);
    let cache = Arc::new(cache);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token(&req()).await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cache.signings(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "credentials fetched once");
}

#[tokio::test]
async fn an_invalidated_token_is_signed_anew() {
    let (cache, clock, _) = setup(None);
    let first = cache.token(&req()).await.unwrap();
    cache.invalidate(&req());
    clock.advance(Duration::from_secs(1));
    assert_ne!(cache.token(&req()).await.unwrap(), first);
    assert_eq!(cache.signings(), 2);
}

#[tokio::test]
async fn a_missing_region_is_an_error_not_a_default() {
    let (cache, _, _) = setup(None);
    let err = cache.token(&TokenRequest::rds("db.example.com", 5432, "u", "")).await.unwrap_err();
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
}
