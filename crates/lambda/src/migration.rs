//! The migration function: the same `bootstrap` deployed with `APP_FUNCTION=migrate` and
//! `DB_USER=app_owner` (on Aurora DSQL: `admin` with a `DbConnectAdmin` token, `DB_ENGINE=dsql`,
//! and `DSQL_RUNTIME_ROLE_ARN`, the role it maps to `app_runtime`), so that migrations reach a
//! cluster that only the VPC can reach.
//! `terraform apply` invokes it directly with `{"action":"migrate"}` whenever the migrations
//! change. It answers `{"applied": [...], "already_applied": N}`, or fails the invocation with
//! the failing migration's name and the database's message (later migrations do not run). It
//! accepts no other event: an API Gateway event sent to it is refused.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::{DbConfig, Store, migrate::migrations};

use crate::Result;

/// Which kind of function this process is (`APP_FUNCTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppFunction {
    /// Serves API Gateway events (the default).
    Api,
    /// Applies migrations when invoked with [`MigrateEvent`].
    Migrate,
}

impl AppFunction {
    pub fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        match get("APP_FUNCTION").as_deref().map(str::trim) {
            None | Some("" | "api") => Ok(AppFunction::Api),
            Some("migrate") => Ok(AppFunction::Migrate),
            Some(other) => Err(crate::Error::config("APP_FUNCTION", format!("must be api or migrate, not {other:?}"))),
        }
    }
}

/// `{"action":"migrate"}`, and nothing else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateEvent {
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Migrate,
}

/// What a run applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// The migrations applied by this run, in order.
    pub applied: Vec<&'static str>,
    /// How many were applied before this run.
    pub already_applied: usize,
}

/// The migration function's state: the owner's login (a cached IAM token on AWS), built once.
#[derive(Debug, Clone)]
pub struct Migrator {
    store: Store,
    /// On Aurora DSQL: the API function's IAM role, mapped to `app_runtime` after the
    /// migrations (`DSQL_RUNTIME_ROLE_ARN`).
    runtime_role_arn: Option<String>,
}

impl Migrator {
    /// Init: the database settings (`DB_*`, with `DB_USER` the owner role).
    pub async fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let db = DbConfig::from_env(get)?;
        tracing::info!(db = %db.describe(), auth = ?db.auth, "init (migration function)");
        let runtime_role_arn = get("DSQL_RUNTIME_ROLE_ARN").filter(|v| !v.trim().is_empty());
        Ok(Self { store: Store::from_config(db).await?, runtime_role_arn })
    }

    pub fn new(store: Store) -> Self {
        Self { store, runtime_role_arn: None }
    }

    /// Applies the pending migrations on a fresh connection (no role self-check: this login is
    /// the owner, on purpose).
    pub async fn run(&self, event: MigrateEvent) -> Result<MigrateReport, store::Error> {
        let Action::Migrate = event.action;
        let client = retry_login(|| self.store.connect_client()).await?;
        let engine = self.store.config().engine;
        let applied = store::migrate::run_for(&client, engine).await?;
        if let Some(arn) = self.runtime_role_arn.as_deref().filter(|_| engine == store::Engine::Dsql) {
            store::migrate::grant_iam_role(&client, arn).await?;
        }
        let report = MigrateReport { already_applied: migrations(engine).len() - applied.len(), applied };
        tracing::info!(applied = ?report.applied, already_applied = report.already_applied, "migrations done");
        Ok(report)
    }
}

/// The owner's login (`connect`), tried again while the database refuses it or cannot be
/// reached, for up to [`LOGIN_RETRY_BUDGET`]. `terraform apply` creates the migration function
/// and its IAM policy and invokes it moments later; IAM is eventually consistent, so the first
/// logins can be refused until the policy has propagated
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency>),
/// and a paused cluster may still be resuming. Each wait is the connection's own backoff.
async fn retry_login<T, F, Fut>(connect: F) -> Result<T, store::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, store::Error>>,
{
    let started = std::time::Instant::now();
    let mut attempts = 1u32;
    loop {
        match connect().await {
            Ok(client) => {
                if attempts > 1 {
                    tracing::info!(attempts, "logged in after the database refused or missed earlier attempts");
                }
                return Ok(client);
            }
            Err(e) => {
                let Some(wait) = e.retry_after() else { return Err(e) };
                let wait = wait.clamp(Duration::from_millis(500), Duration::from_secs(10));
                if started.elapsed() + wait > LOGIN_RETRY_BUDGET {
                    return Err(e);
                }
                tracing::warn!(attempts, error = %e, wait_ms = wait.as_millis() as u64, "login failed; trying again");
                tokio::time::sleep(wait).await;
                attempts += 1;
            }
        }
    }
}

/// How long the migration function keeps trying to log in (see [`retry_login`]). The
/// function's timeout (`migrate_timeout`, at least 60 s) leaves room for it and the migrations.
pub const LOGIN_RETRY_BUDGET: Duration = Duration::from_secs(45);
