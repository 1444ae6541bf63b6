//! The route table: every path template, the methods it answers, and what handles it. The
//! router (matchit) and the `Allow` header of a 405 come from this one table.

use http::Method;

/// A path template of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    OpenApi,
    Me,
    Users,
    User,
    Tenants,
    Tenant,
    Members,
    Member,
    Todos,
    Todo,
    AllTodos,
    Invitations,
    Invitation,
    AcceptInvitation,
}

#[derive(Debug)]
pub struct RouteSpec {
    pub route: Route,
    /// matchit syntax: `{name}` is one path segment.
    pub path: &'static str,
    pub methods: &'static [Method],
}

pub const ROUTES: &[RouteSpec] = &[
    RouteSpec { route: Route::Health, path: "/health", methods: &[Method::GET] },
    RouteSpec { route: Route::OpenApi, path: "/openapi.json", methods: &[Method::GET] },
    RouteSpec { route: Route::Me, path: "/api/me", methods: &[Method::GET] },
    RouteSpec { route: Route::Users, path: "/api/users", methods: &[Method::GET, Method::POST] },
    RouteSpec {
        route: Route::User,
        path: "/api/users/{user_id}",
        methods: &[Method::GET, Method::PUT, Method::DELETE],
    },
    RouteSpec { route: Route::Tenants, path: "/api/tenants", methods: &[Method::GET, Method::POST] },
    RouteSpec {
        route: Route::Tenant,
        path: "/api/tenants/{tenant_id}",
        methods: &[Method::GET, Method::PATCH, Method::DELETE],
    },
    RouteSpec { route: Route::Members, path: "/api/tenants/{tenant_id}/members", methods: &[Method::GET] },
    RouteSpec {
        route: Route::Member,
        path: "/api/tenants/{tenant_id}/members/{user_id}",
        methods: &[Method::PUT, Method::DELETE],
    },
    RouteSpec { route: Route::Todos, path: "/api/tenants/{tenant_id}/todos", methods: &[Method::GET, Method::POST] },
    RouteSpec {
        route: Route::Todo,
        path: "/api/tenants/{tenant_id}/todos/{todo_id}",
        methods: &[Method::GET, Method::PATCH, Method::DELETE],
    },
    RouteSpec { route: Route::AllTodos, path: "/api/todos", methods: &[Method::GET] },
    RouteSpec {
        route: Route::Invitations,
        path: "/api/tenants/{tenant_id}/invitations",
        methods: &[Method::GET, Method::POST],
    },
    RouteSpec {
        route: Route::Invitation,
        path: "/api/tenants/{tenant_id}/invitations/{invitation_id}",
        methods: &[Method::DELETE],
    },
    RouteSpec { route: Route::AcceptInvitation, path: "/api/invitations/accept", methods: &[Method::POST] },
];

/// The tenant a path is about (`/api/tenants/{tenant_id}/...`), for log lines.
pub fn tenant_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/api/tenants/")?.split('/').next().filter(|s| !s.is_empty())
}

/// Builds the router once; values are indexes into [`ROUTES`].
pub(crate) fn router() -> matchit::Router<usize> {
    let mut router = matchit::Router::new();
    for (i, spec) in ROUTES.iter().enumerate() {
        router.insert(spec.path, i).expect("route table has no conflicts");
    }
    router
}
