//! The records the queries read and the API writes out (tenants, todos, users, members), and
//! what a request asks of them (a todo filter or patch, a new user), built of the values in
//! `model.rs`.

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{DisplayName, Email, Role, TenantId, TodoId, TodoTitle, UserId, rfc3339};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TodoFilter {
    pub complete: Option<bool>,
}

/// A partial update of a todo; at least one field is set (checked where it is parsed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TodoPatch {
    pub title: Option<TodoTitle>,
    pub complete: Option<bool>,
}

/// The caller as the identity provider describes it, for the first-call registration. A user
/// is keyed on (issuer, subject): the same subject from two issuers is two users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub issuer: String,
    pub subject: String,
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
    /// Whether this identity may take over a user row registered before issuers were recorded
    /// (same subject, no issuer): only when its issuer is the one the deployment trusted then
    /// (`LEGACY_USER_ISSUER`). Never on Aurora DSQL, which has no such rows.
    pub claims_legacy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The caller's role in this tenant.
    pub role: Role,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /api/tenants/{id}`: the tenant, its plan, and for its admins the use of each count
/// quota of that plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: Tenant,
    /// The tenant's plan (the deployment's default plan unless the operator set another).
    pub plan: String,
    /// Admins only: each count and its quota under the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A tenant's counts against its plan's quotas. A count is taken up to its quota, so a tenant
/// above it (after a change to a smaller plan) shows its quota as used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub todos: Count,
    pub members: Count,
    pub pending_invitations: Count,
}

/// One count and its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub used: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Todo {
    pub tenant_id: TenantId,
    pub id: TodoId,
    pub title: String,
    pub complete: bool,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    /// The identity provider's subject; shown to the user themself only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    #[serde(serialize_with = "rfc3339")]
    pub joined_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub role: Role,
}
