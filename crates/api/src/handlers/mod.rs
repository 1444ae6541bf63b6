//! The endpoints: [`dispatch`] answers a matched route, and one module per resource (users,
//! tenants, members, invitations, todos) holds its handlers. Each handler parses its input into
//! domain types, makes one store call (one transaction) and shapes the response (see
//! [`crate::respond`]); errors go back to [`crate::Error`]. No handler module imports another:
//! what they share is in `ctx` (the request's context and path ids), [`crate::body`] and
//! [`crate::respond`].

mod ctx;
mod invitations;
mod members;
mod tenants;
mod todos;
mod users;

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use matchit::Params;
use store::{Idempotency, TenantId, TodoFilter};

use self::ctx::{Ctx, invitation_id, tenant_id, todo_id, user_id};
use crate::{
    App, Deadline, Error, Principal, Result, body, json_response,
    respond::{no_content, ok, ok_todos, openapi},
    routes::{ROUTES, Route},
};

/// Answers `req`, whose path the router matched as `matched` (`None`: no route).
pub(crate) async fn dispatch(
    app: &App,
    req: &Request<Bytes>,
    matched: Option<matchit::Match<'_, '_, &usize>>,
) -> Result<Response<Bytes>> {
    body::check_size(req, app.body_limit())?;
    let matched = matched.ok_or(Error::NotFound("no such route"))?;
    let spec = &ROUTES[*matched.value];
    // A browser's preflight carries no identity: it is answered before one is asked for.
    if app.inner.cors.is_preflight(req) {
        return Ok(app.inner.cors.preflight(req, spec.methods));
    }
    if !spec.methods.contains(req.method()) {
        return Err(Error::MethodNotAllowed(spec.methods));
    }
    match spec.route {
        Route::Health => return Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
        Route::OpenApi => return Ok(openapi()),
        _ => {}
    }
    let principal = req.extensions().get::<Principal>().ok_or(Error::Unauthorized)?;
    let deadline = req.extensions().get::<Deadline>().map(|d| d.0);
    let idem = idempotency(app, req)?;
    let result = serve(app, req, spec.route, &matched.params, principal, deadline, idem.as_ref()).await;
    let Some(idem) = idem else { return result };
    match result {
        Ok(mut res) => {
            if idem.replayed() {
                res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(res)
        }
        Err(e) => {
            // A request that failed with a 4xx leaves no record: the client may fix it and send it
            // again with the same key. (Best effort: a record left behind answers the same 4xx.)
            // (A rate-limit refusal came before any transaction: there is nothing to drop, and it
            // must not cost a round trip.)
            if e.status().is_client_error()
                && !matches!(e, Error::RateLimited { .. })
                && !idem.replayed()
                && let Some(me) = app.known(principal)
            {
                let db = app.store().scoped(me).with_deadline(deadline).with_idempotency(Some(&idem));
                if let Err(forget) = db.forget_idempotency().await {
                    tracing::warn!(error = %forget, "could not drop the idempotency record of a failed request");
                }
            }
            Err(e)
        }
    }
}

/// The request's `Idempotency-Key`, for the writes under /api; 400 for a malformed one.
fn idempotency(app: &App, req: &Request<Bytes>) -> Result<Option<Idempotency>> {
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let Some(value) = req.headers().get("idempotency-key").filter(|_| writes) else { return Ok(None) };
    let bad = || Error::BadRequest("Idempotency-Key: must be 1 to 255 printable ASCII characters".into());
    let key = value.to_str().map_err(|_| bad())?;
    let tenant = crate::routes::tenant_in_path(req.uri().path()).and_then(|t| TenantId::parse(t).ok());
    let path = req.uri().path_and_query().map_or("", |p| p.as_str());
    Idempotency::new(key, tenant, req.method().as_str(), path, req.body(), app.idempotency_life())
        .map(Some)
        .ok_or_else(bad)
}

/// Runs the handler of `route` for the signed-in caller.
async fn serve(
    app: &App,
    req: &Request<Bytes>,
    route: Route,
    p: &Params<'_, '_>,
    principal: &Principal,
    deadline: Option<Instant>,
    idem: Option<&Idempotency>,
) -> Result<Response<Bytes>> {
    // POST /api/users registers the caller itself (and says 201 when it did): limited from the
    // caller's second call in this instance, once their id is known.
    let registers = route == Route::Users && req.method() == Method::POST;
    let me = match registers {
        true => app.known(principal),
        false => Some(app.user_id(principal, deadline).await?),
    };
    let Some(me) = me else { return users::post_user(app, req, principal, deadline, idem, None).await };
    let tenant = crate::routes::tenant_in_path(req.uri().path()).and_then(|t| TenantId::parse(t).ok());
    let admitted = crate::ratelimit::admit(app, me, tenant, deadline).await?;
    let mut result = if registers {
        users::post_user(app, req, principal, deadline, idem, Some(&admitted.slot)).await
    } else {
        let db = app.store().scoped(me).with_deadline(deadline).with_idempotency(idem).with_lease(Some(&admitted.slot));
        // Boxed: the handlers' futures are large, and this one is awaited inside another.
        Box::pin(handle(app, req, route, p, principal, db)).await
    };
    crate::ratelimit::finish(app, admitted, me, tenant, &mut result);
    result
}

/// Runs the handler of `route` for the signed-in caller, on their view of the database.
async fn handle(
    app: &App,
    req: &Request<Bytes>,
    route: Route,
    p: &Params<'_, '_>,
    principal: &Principal,
    db: store::Scoped<'_>,
) -> Result<Response<Bytes>> {
    let ctx = Ctx { app, req, db, principal };
    match (route, req.method().clone()) {
        (Route::Me, Method::GET) => users::get_me(&ctx).await,
        (Route::Users, Method::GET) => ok(&ctx.db.list_users(body::list_query(req)?.page).await?),
        (Route::User, Method::GET) => ok(&ctx.db.get_user(user_id(p)?).await?),
        (Route::User, Method::PUT) => users::put_user(&ctx, user_id(p)?).await,
        (Route::User, Method::DELETE) => users::delete_user(&ctx, user_id(p)?).await,
        (Route::Tenants, Method::GET) => ok(&ctx.db.list_tenants(body::list_query(req)?.page).await?),
        (Route::Tenants, Method::POST) => tenants::post_tenant(&ctx).await,
        (Route::Tenant, Method::GET) => ok(&ctx.db.get_tenant(tenant_id(p)?).await?),
        (Route::Tenant, Method::PATCH) => tenants::patch_tenant(&ctx, tenant_id(p)?).await,
        (Route::Tenant, Method::DELETE) => no_content(ctx.db.delete_tenant(tenant_id(p)?).await?),
        (Route::Members, Method::GET) => ok(&ctx.db.list_members(tenant_id(p)?, body::list_query(req)?.page).await?),
        (Route::Member, Method::PUT) => members::put_member(&ctx, tenant_id(p)?, user_id(p)?).await,
        (Route::Invitations, Method::GET) => {
            ok(&ctx.db.list_invitations(tenant_id(p)?, body::list_query(req)?.page).await?)
        }
        (Route::Invitations, Method::POST) => invitations::create(&ctx.db, req, tenant_id(p)?).await,
        (Route::Invitation, Method::DELETE) => {
            no_content(ctx.db.revoke_invitation(tenant_id(p)?, invitation_id(p)?).await?)
        }
        (Route::AcceptInvitation, Method::POST) => invitations::accept(&ctx.db, req, principal).await,
        (Route::Member, Method::DELETE) => no_content(ctx.db.remove_member(tenant_id(p)?, user_id(p)?).await?),
        (Route::Todos, Method::GET) => {
            let q = body::list_query(req)?;
            ok_todos(&ctx.db.list_todos(tenant_id(p)?, TodoFilter { complete: q.complete }, q.page).await?)
        }
        (Route::Todos, Method::POST) => todos::post_todo(&ctx, tenant_id(p)?).await,
        (Route::Todo, Method::GET) => ok(&ctx.db.get_todo(tenant_id(p)?, todo_id(p)?).await?),
        (Route::Todo, Method::PATCH) => todos::patch_todo(&ctx, tenant_id(p)?, todo_id(p)?).await,
        (Route::Todo, Method::DELETE) => no_content(ctx.db.delete_todo(tenant_id(p)?, todo_id(p)?).await?),
        (Route::AllTodos, Method::GET) => {
            let q = body::list_query(req)?;
            ok_todos(&ctx.db.list_all_todos(TodoFilter { complete: q.complete }, q.page).await?)
        }
        _ => Err(Error::NotFound("no such route")),
    }
}
