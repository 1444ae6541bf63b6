//! One function per endpoint. Each parses its input into domain types, makes one store call
//! (one transaction) and shapes the response; errors go back to [`crate::Error`].

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use matchit::Params;
use serde::{Deserialize, Serialize};
use store::{
    DisplayName, Email, Idempotency, InvitationId, Membership, NewUser, Role, Scoped, TenantId, TenantName, TodoFilter,
    TodoId, TodoPatch, TodoTitle, User, UserId,
};
use uuid::Uuid;

use crate::{
    App, Deadline, Error, Principal, Result, body, invite, json_response,
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
            if e.status().is_client_error()
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
    // POST /api/users registers the caller itself (and says 201 when it did).
    if route == Route::Users && req.method() == Method::POST {
        return post_user(app, req, principal, deadline, idem).await;
    }
    let me = app.user_id(principal, deadline).await?;
    let db = app.store().scoped(me).with_deadline(deadline).with_idempotency(idem);
    let ctx = Ctx { app, req, db, principal };
    match (route, req.method().clone()) {
        (Route::Me, Method::GET) => get_me(&ctx).await,
        (Route::Users, Method::GET) => ok(&ctx.db.list_users(body::list_query(req)?.page).await?),
        (Route::User, Method::GET) => ok(&ctx.db.get_user(user_id(p)?).await?),
        (Route::User, Method::PUT) => put_user(&ctx, user_id(p)?).await,
        (Route::User, Method::DELETE) => delete_user(&ctx, user_id(p)?).await,
        (Route::Tenants, Method::GET) => ok(&ctx.db.list_tenants(body::list_query(req)?.page).await?),
        (Route::Tenants, Method::POST) => post_tenant(&ctx).await,
        (Route::Tenant, Method::GET) => ok(&ctx.db.get_tenant(tenant_id(p)?).await?),
        (Route::Tenant, Method::PATCH) => patch_tenant(&ctx, tenant_id(p)?).await,
        (Route::Tenant, Method::DELETE) => no_content(ctx.db.delete_tenant(tenant_id(p)?).await?),
        (Route::Members, Method::GET) => ok(&ctx.db.list_members(tenant_id(p)?, body::list_query(req)?.page).await?),
        (Route::Member, Method::PUT) => put_member(&ctx, tenant_id(p)?, user_id(p)?).await,
        (Route::Invitations, Method::GET) => {
            ok(&ctx.db.list_invitations(tenant_id(p)?, body::list_query(req)?.page).await?)
        }
        (Route::Invitations, Method::POST) => invite::create(&ctx.db, req, tenant_id(p)?).await,
        (Route::Invitation, Method::DELETE) => {
            no_content(ctx.db.revoke_invitation(tenant_id(p)?, invitation_id(p)?).await?)
        }
        (Route::AcceptInvitation, Method::POST) => invite::accept(&ctx.db, req, principal).await,
        (Route::Member, Method::DELETE) => no_content(ctx.db.remove_member(tenant_id(p)?, user_id(p)?).await?),
        (Route::Todos, Method::GET) => {
            let q = body::list_query(req)?;
            ok_todos(&ctx.db.list_todos(tenant_id(p)?, TodoFilter { complete: q.complete }, q.page).await?)
        }
        (Route::Todos, Method::POST) => post_todo(&ctx, tenant_id(p)?).await,
        (Route::Todo, Method::GET) => ok(&ctx.db.get_todo(tenant_id(p)?, todo_id(p)?).await?),
        (Route::Todo, Method::PATCH) => patch_todo(&ctx, tenant_id(p)?, todo_id(p)?).await,
        (Route::Todo, Method::DELETE) => no_content(ctx.db.delete_todo(tenant_id(p)?, todo_id(p)?).await?),
        (Route::AllTodos, Method::GET) => {
            let q = body::list_query(req)?;
            ok_todos(&ctx.db.list_all_todos(TodoFilter { complete: q.complete }, q.page).await?)
        }
        _ => Err(Error::NotFound("no such route")),
    }
}

/// What a handler needs about the request.
struct Ctx<'a> {
    app: &'a App,
    req: &'a Request<Bytes>,
    db: Scoped<'a>,
    principal: &'a Principal,
}

impl Ctx<'_> {
    /// The caller's row is gone (deleted through another instance, whose cache said it
    /// existed): register them again from their claims, for a second try.
    async fn registered_again(&self) -> Result<Scoped<'_>> {
        self.app.forget(self.principal);
        let id = self.app.user_id(self.principal, self.db.deadline()).await?;
        Ok(self.app.store().scoped(id).with_deadline(self.db.deadline()).with_idempotency(self.db.idempotency()))
    }
}

fn param<'p>(p: &'p Params<'_, '_>, name: &str) -> &'p str {
    p.get(name).unwrap_or_default()
}

fn tenant_id(p: &Params<'_, '_>) -> Result<TenantId> {
    TenantId::parse(param(p, "tenant_id")).map_err(Error::bad_param)
}

fn user_id(p: &Params<'_, '_>) -> Result<UserId> {
    UserId::parse(param(p, "user_id")).map_err(Error::bad_param)
}

fn todo_id(p: &Params<'_, '_>) -> Result<TodoId> {
    TodoId::parse(param(p, "todo_id")).map_err(Error::bad_param)
}

fn invitation_id(p: &Params<'_, '_>) -> Result<InvitationId> {
    InvitationId::parse(param(p, "invitation_id")).map_err(Error::bad_param)
}

/// An optional field that, when present, must have a value: `null` is rejected (422) like any
/// other wrong type, rather than read as "absent".
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An optional client-chosen id in a body: lets a client retry a create without duplicating
/// it (the retry gets 409).
fn body_id(id: Option<&str>) -> Result<Uuid> {
    match id {
        None => Ok(Uuid::new_v4()),
        Some(s) => {
            store::parse_uuid(s).ok_or_else(|| Error::Invalid { field: "id".into(), message: "must be a UUID".into() })
        }
    }
}

/// The OpenAPI document of this API (`crates/api/openapi.json`, checked against the route
/// table by a test and against real responses by schemathesis in CI).
pub const OPENAPI: &str = include_str!("../openapi.json");

fn openapi() -> Response<Bytes> {
    let mut res = Response::new(Bytes::from_static(OPENAPI.as_bytes()));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

pub(crate) fn ok<T: Serialize>(value: &T) -> Result<Response<Bytes>> {
    Ok(json_response(StatusCode::OK, value))
}

/// A page of todos: the same JSON as [`ok`] writes, written directly (see `todo_json`).
fn ok_todos(page: &store::Page<store::Todo>) -> Result<Response<Bytes>> {
    Ok(crate::json_response_with(StatusCode::OK, |buf| crate::todo_json::write_page(buf, page)))
}

pub(crate) fn created<T: Serialize>(value: &T, location: String) -> Result<Response<Bytes>> {
    let mut res = json_response(StatusCode::CREATED, value);
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

fn no_content((): ()) -> Result<Response<Bytes>> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

#[derive(Serialize)]
struct MeBody {
    user: User,
    memberships: Vec<Membership>,
}

async fn get_me(ctx: &Ctx<'_>) -> Result<Response<Bytes>> {
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
async fn post_user(
    app: &App,
    req: &Request<Bytes>,
    principal: &Principal,
    deadline: Option<Instant>,
    idem: Option<&Idempotency>,
) -> Result<Response<Bytes>> {
    let (name, email) = ProfileBody::parse(req)?;
    let db = |id| app.store().scoped(id).with_deadline(deadline).with_idempotency(idem);
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

async fn put_user(ctx: &Ctx<'_>, id: UserId) -> Result<Response<Bytes>> {
    let (name, email) = ProfileBody::parse(ctx.req)?;
    ok(&ctx.db.update_user(id, &name, &email).await?)
}

async fn delete_user(ctx: &Ctx<'_>, id: UserId) -> Result<Response<Bytes>> {
    ctx.db.delete_user(id).await?;
    ctx.app.forget(ctx.principal);
    no_content(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenantBody {
    name: String,
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
}

async fn post_tenant(ctx: &Ctx<'_>) -> Result<Response<Bytes>> {
    let b: NewTenantBody = body::json(ctx.req)?;
    let name = TenantName::parse(&b.name).map_err(Error::invalid)?;
    let id = TenantId(body_id(b.id.as_deref())?);
    let tenant = match ctx.db.create_tenant(id, &name).await {
        Err(store::Error::NotFound) => ctx.registered_again().await?.create_tenant(id, &name).await?,
        other => other?,
    };
    created(&tenant, format!("/api/tenants/{id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameTenantBody {
    name: String,
}

async fn patch_tenant(ctx: &Ctx<'_>, id: TenantId) -> Result<Response<Bytes>> {
    let b: RenameTenantBody = body::json(ctx.req)?;
    let name = TenantName::parse(&b.name).map_err(Error::invalid)?;
    ok(&ctx.db.rename_tenant(id, &name).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    role: String,
}

async fn put_member(ctx: &Ctx<'_>, tenant: TenantId, user: UserId) -> Result<Response<Bytes>> {
    let b: MemberBody = body::json(ctx.req)?;
    let role = Role::parse(&b.role).map_err(Error::invalid)?;
    ok(&ctx.db.set_member_role(tenant, user, role).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodoBody {
    title: String,
    #[serde(default, deserialize_with = "present")]
    complete: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
}

async fn post_todo(ctx: &Ctx<'_>, tenant: TenantId) -> Result<Response<Bytes>> {
    let b: NewTodoBody = body::json(ctx.req)?;
    let title = TodoTitle::parse(&b.title).map_err(Error::invalid)?;
    let id = TodoId(body_id(b.id.as_deref())?);
    let todo = ctx.db.create_todo(tenant, id, &title, b.complete.unwrap_or(false)).await?;
    created(&todo, format!("/api/tenants/{tenant}/todos/{id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TodoPatchBody {
    #[serde(default, deserialize_with = "present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    complete: Option<bool>,
}

async fn patch_todo(ctx: &Ctx<'_>, tenant: TenantId, id: TodoId) -> Result<Response<Bytes>> {
    let b: TodoPatchBody = body::json(ctx.req)?;
    let patch = TodoPatch {
        title: b.title.as_deref().map(TodoTitle::parse).transpose().map_err(Error::invalid)?,
        complete: b.complete,
    };
    if patch.title.is_none() && patch.complete.is_none() {
        return Err(Error::Invalid { field: "body".into(), message: "set at least one of title, complete".into() });
    }
    ok(&ctx.db.update_todo(tenant, id, &patch).await?)
}
