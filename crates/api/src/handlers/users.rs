//! The caller and users: `GET /api/me`, `POST /api/users` (registration), `PUT` and `DELETE
//! /api/users/{user_id}`.

use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use store::{DisplayName, Email, Idempotency, Membership, NewUser, User, UserId};

use super::ctx::Ctx;
use crate::{
    App, Error, Principal, Result, body,
    respond::{created, no_content, ok},
};

#[derive(Serialize)]
struct MeBody {
    user: User,
    memberships: Vec<Membership>,
}

pub(super) async fn get_me(ctx: &Ctx<'_>) -> Result<Response<Bytes>> {
    let (user, memberships) = match ctx.db.me().await {
        Ok(found) => found,
        Err(store::Error::NotFound) => ctx.registered_again().await?.me().await?,
        Err(e) => return Err(e.into()),
    };
    ok(&MeBody { user, memberships })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    name: String,
    email: String,
}

impl ProfileBody {
    fn parse(req: &Request<Bytes>) -> Result<(DisplayName, Email)> {
        let b: ProfileBody = body::json(req)?;
        Ok((DisplayName::parse(&b.name).map_err(Error::invalid)?, Email::parse(&b.email).map_err(Error::invalid)?))
    }
}

/// Registers the caller with this profile (201), or replaces the profile of a registered caller
/// (200).
pub(super) async fn post_user(
    app: &App,
    req: &Request<Bytes>,
    principal: &Principal,
    deadline: Option<Instant>,
    idem: Option<&Idempotency>,
    lease: Option<&store::lease::LeaseSlot>,
) -> Result<Response<Bytes>> {
    let (name, email) = ProfileBody::parse(req)?;
    let db = |id| app.store().scoped(id).with_deadline(deadline).with_idempotency(idem).with_lease(lease);
    let mut answer = None;
    if let Some(id) = app.known(principal) {
        match db(id).set_profile(&name, &email, false).await {
            Err(store::Error::NotFound) => app.forget(principal),
            other => answer = Some(other?),
        }
    }
    let (user, registered) = match answer {
        Some(done) => done,
        None => {
            let new = NewUser { name: Some(name.clone()), email: Some(email.clone()), ..app.new_user(principal) };
            let (id, registered) = app.store().register(&new, deadline).await?;
            app.remember(principal, id);
            db(id).set_profile(&name, &email, registered).await?
        }
    };
    if registered { created(&user, format!("/api/users/{}", user.id)) } else { ok(&user) }
}

pub(super) async fn put_user(ctx: &Ctx<'_>, id: UserId) -> Result<Response<Bytes>> {
    let (name, email) = ProfileBody::parse(ctx.req)?;
    ok(&ctx.db.update_user(id, &name, &email).await?)
}

pub(super) async fn delete_user(ctx: &Ctx<'_>, id: UserId) -> Result<Response<Bytes>> {
    ctx.db.delete_user(id).await?;
    ctx.app.forget(ctx.principal);
    no_content(())
}
