//! What the API function is invoked with: an API Gateway event, or `{"action":"cleanup"}` from
//! the EventBridge schedule (Terraform), which deletes expired idempotency records in batches,
//! off the request path.

use serde::{Deserialize, Serialize, de::Error as _};
use serde_json::value::RawValue;

use crate::{Function, event::ApiEvent, event::ApiResponse};

/// One invocation of the API function.
#[derive(Debug)]
// Built once per invocation and taken apart at once: boxing the event would only add an
// allocation to every request.
#[allow(clippy::large_enum_variant)]
pub enum Invocation {
    Api(ApiEvent),
    Cleanup,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action: String,
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        match serde_json::from_str::<Action>(raw.get()) {
            Ok(a) if a.action == "cleanup" => Ok(Invocation::Cleanup),
            _ => serde_json::from_str::<ApiEvent>(raw.get()).map(Invocation::Api).map_err(D::Error::custom),
        }
    }
}

/// The answer to an invocation.
#[derive(Debug, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum Output {
    Api(ApiResponse),
    Cleanup(CleanupReport),
}

/// What a cleanup run deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    pub deleted: u64,
}

/// Records deleted per transaction: bounded work per statement, whatever the backlog.
const CLEANUP_BATCH: i32 = 500;
/// Batches per run at most; the next scheduled run takes the rest.
const CLEANUP_BATCHES: usize = 100;

impl Function {
    /// Deletes expired idempotency records, a batch per transaction; on Aurora DSQL also
    /// finishes the purges of deleted tenants.
    pub async fn cleanup(&self) -> Result<CleanupReport, store::Error> {
        let mut deleted = 0;
        for _ in 0..CLEANUP_BATCHES {
            let n = self.app().store().cleanup_idempotency(CLEANUP_BATCH).await?;
            deleted += n;
            if n < CLEANUP_BATCH as u64 {
                break;
            }
        }
        tracing::info!(deleted, "idempotency records cleaned up");
        let tenants = self.app().store().purge_deleted_tenants().await?;
        if tenants > 0 {
            tracing::info!(tenants, "deleted tenants purged");
        }
        Ok(CleanupReport { deleted })
    }
}
