//! Every SQL statement the API runs, prepared once per physical connection.
//!
//! Role checks are folded into the statements: a statement on a tenant returns the caller's role
//! in it (`me_role`, no row when the caller is not a member) next to its result, so that one
//! statement decides 404, 403 or success without a second round trip. The tenant scope that RLS
//! keys on is set by the `Scope*` statements, which run first in the same transaction.

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident => $sql:expr,)*) => {
        /// A prepared statement's name; `Q::sql` is its text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Q { $($(#[$doc])* $name,)* }

        impl Q {
            pub const ALL: &'static [Q] = &[$(Q::$name,)*];

            pub const fn sql(self) -> &'static str {
                match self { $(Q::$name => $sql,)* }
            }
        }
    };
}

/// The caller's role in tenant `$1`, as a CTE named `me`.
macro_rules! me {
    () => {
        "me AS (SELECT role FROM memberships WHERE tenant_id = $1::uuid AND user_id = app_user_id())"
    };
}

statements! {
    /// Sets the caller and an explicit tenant list (empty, or a tenant being created).
    ScopeSet => "SELECT set_config('app.user_id', $1::uuid::text, true), \
                        set_config('app.tenant_ids', $2::uuid[]::text, true)",
    /// Scopes to tenant `$2` if and only if the caller is a member of it.
    ScopeMember => "SELECT set_config('app.tenant_ids', coalesce((SELECT array_agg(tenant_id)::text \
                        FROM memberships WHERE user_id = $1::uuid AND tenant_id = $2::uuid), '{}'), true)",
    /// Scopes to every tenant the caller is a member of.
    ScopeAll => "SELECT set_config('app.tenant_ids', coalesce((SELECT array_agg(tenant_id)::text \
                        FROM memberships WHERE user_id = $1::uuid), '{}'), true)",

    /// Creates the caller's row on first sight; reads only when it exists (no write).
    /// Returns whether the row exists afterwards (false: the email belongs to someone else).
    UserEnsure => "WITH existing AS (SELECT id FROM users WHERE id = $1::uuid), \
                   ins AS (INSERT INTO users (id, subject, name, email) \
                           SELECT $1::uuid, $2::text, $3::text, $4::text WHERE NOT EXISTS (SELECT 1 FROM existing) \
                           ON CONFLICT DO NOTHING RETURNING id) \
                   SELECT EXISTS (SELECT 1 FROM existing) OR EXISTS (SELECT 1 FROM ins)",
    UserMe => "SELECT id, subject, name, email, created_at FROM users WHERE id = app_user_id()",
    UserMemberships => "SELECT m.tenant_id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
                        WHERE m.user_id = app_user_id() ORDER BY t.created_at, t.id LIMIT 200",
    /// POST /api/users: register or update the caller's profile. The last column says whether
    /// the row was created.
    UserUpsert => "INSERT INTO users AS u (id, subject, name, email) VALUES ($1::uuid, $2::text, $3::text, $4::text) \
                   ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, updated_at = now() \
                   RETURNING id, subject, name, email, created_at, (xmax = 0)",
    /// Self or a co-member (RLS on users, in the all-memberships scope, decides visibility).
    UserGet => "SELECT id, CASE WHEN id = app_user_id() THEN subject END, name, email, created_at \
                FROM users WHERE id = $1::uuid",
    UserList => "SELECT u.id, CASE WHEN u.id = app_user_id() THEN u.subject END, u.name, u.email, u.created_at \
                 FROM users u \
                 WHERE u.id IN (SELECT m.user_id FROM memberships m WHERE m.tenant_id = ANY (app_tenant_ids()) \
                                UNION ALL SELECT app_user_id()) \
                   AND (u.created_at, u.id) > ($1::timestamptz, $2::uuid) \
                 ORDER BY u.created_at, u.id LIMIT $3::int8",
    /// PUT /api/users/{id}: only the user themself. First column: is the target visible at all.
    UserUpdate => "WITH target AS (SELECT id FROM users WHERE id = $1::uuid), \
                   upd AS (UPDATE users SET name = $2::text, email = $3::text, updated_at = now() \
                           WHERE id = $1::uuid AND id = app_user_id() \
                           RETURNING id, subject, name, email, created_at) \
                   SELECT EXISTS (SELECT 1 FROM target), upd.id, upd.subject, upd.name, upd.email, upd.created_at \
                   FROM (SELECT 1) one LEFT JOIN upd ON true",
    /// Locks the tenants the caller administers, so that two admins leaving at once cannot both
    /// pass the last-admin check.
    UserLockAdminTenants => "SELECT t.id FROM tenants t WHERE t.id IN \
                             (SELECT tenant_id FROM memberships WHERE user_id = app_user_id() AND role = 'admin') \
                             ORDER BY t.id FOR UPDATE",
    /// DELETE /api/users/{id}: only the user themself, and not while they are the last admin of
    /// a tenant (it would be left with nobody to manage it).
    UserDelete => "WITH target AS (SELECT id FROM users WHERE id = $1::uuid), \
                   sole AS (SELECT m.tenant_id FROM memberships m \
                            WHERE m.user_id = $1::uuid AND m.role = 'admin' \
                              AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.tenant_id = m.tenant_id \
                                              AND o.role = 'admin' AND o.user_id <> m.user_id)), \
                   del AS (DELETE FROM users WHERE id = $1::uuid AND id = app_user_id() \
                           AND NOT EXISTS (SELECT 1 FROM sole) RETURNING id) \
                   SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM sole), EXISTS (SELECT 1 FROM del)",

    /// POST /api/tenants: the tenant and the caller's admin membership, in the scope of the new
    /// tenant only. A taken id fails on tenants_pkey (409).
    TenantCreate => "WITH t AS (INSERT INTO tenants (id, name) VALUES ($1::uuid, $2::text) RETURNING id, name, created_at), \
                     m AS (INSERT INTO memberships (tenant_id, user_id, role) SELECT id, app_user_id(), 'admin' FROM t RETURNING role) \
                     SELECT t.id, t.name, m.role, t.created_at FROM t, m",
    TenantList => "SELECT t.id, t.name, m.role, t.created_at FROM tenants t \
                   JOIN memberships m ON m.tenant_id = t.id AND m.user_id = app_user_id() \
                   WHERE (t.created_at, t.id) > ($1::timestamptz, $2::uuid) \
                   ORDER BY t.created_at, t.id LIMIT $3::int8",
    TenantGet => "SELECT t.id, t.name, m.role, t.created_at FROM tenants t \
                  JOIN memberships m ON m.tenant_id = t.id AND m.user_id = app_user_id() WHERE t.id = $1::uuid",
    TenantRename => concat!("WITH ", me!(), ", \
                     upd AS (UPDATE tenants SET name = $2::text WHERE id = $1::uuid \
                             AND EXISTS (SELECT 1 FROM me WHERE role = 'admin') RETURNING id, name, created_at) \
                     SELECT me.role, upd.id, upd.name, upd.created_at FROM me LEFT JOIN upd ON true"),
    TenantDelete => concat!("WITH ", me!(), ", \
                     del AS (DELETE FROM tenants WHERE id = $1::uuid \
                             AND EXISTS (SELECT 1 FROM me WHERE role = 'admin') RETURNING id) \
                     SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"),

    /// Serialises membership changes of tenant `$1` (the last-admin rule reads, then writes).
    TenantLock => "SELECT id FROM tenants WHERE id = $1::uuid FOR UPDATE",
    MemberList => concat!("WITH ", me!(), " \
                   SELECT me.role, x.tenant_id, x.user_id, x.name, x.email, x.role, x.created_at FROM me LEFT JOIN LATERAL ( \
                     SELECT m.tenant_id, m.user_id, u.name, u.email, m.role, m.created_at FROM memberships m \
                     JOIN users u ON u.id = m.user_id \
                     WHERE m.tenant_id = $1::uuid AND (m.created_at, m.user_id) > ($2::timestamptz, $3::uuid) \
                     ORDER BY m.created_at, m.user_id LIMIT $4::int8) x ON true"),
    /// PUT /api/tenants/{id}/members/{user_id}: admins add a member or change a role; the last
    /// admin cannot be demoted. Columns: me_role, allowed, inserted.
    MemberPut => concat!("WITH ", me!(), ", \
                  others AS (SELECT count(*) AS n FROM memberships \
                             WHERE tenant_id = $1::uuid AND role = 'admin' AND user_id <> $2::uuid), \
                  ok AS (SELECT 1 FROM me WHERE me.role = 'admin' AND ($3::text = 'admin' OR (SELECT n FROM others) > 0)), \
                  up AS (INSERT INTO memberships (tenant_id, user_id, role) SELECT $1::uuid, $2::uuid, $3::text FROM ok \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role \
                         RETURNING (xmax = 0) AS inserted) \
                  SELECT me.role, EXISTS (SELECT 1 FROM ok), (SELECT inserted FROM up) FROM me"),
    /// One member with their profile (run after MemberPut in the same transaction).
    MemberGet => "SELECT m.tenant_id, m.user_id, u.name, u.email, m.role, m.created_at FROM memberships m \
                  JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1::uuid AND m.user_id = $2::uuid",
    /// DELETE /api/tenants/{id}/members/{user_id}: admins remove anyone, members remove
    /// themselves (leave); never the last admin. Columns: me_role, target_role, others, deleted.
    MemberDelete => concat!("WITH ", me!(), ", \
                     target AS (SELECT role FROM memberships WHERE tenant_id = $1::uuid AND user_id = $2::uuid), \
                     others AS (SELECT count(*) AS n FROM memberships \
                                WHERE tenant_id = $1::uuid AND role = 'admin' AND user_id <> $2::uuid), \
                     del AS (DELETE FROM memberships WHERE tenant_id = $1::uuid AND user_id = $2::uuid \
                             AND EXISTS (SELECT 1 FROM me WHERE me.role = 'admin' OR $2::uuid = app_user_id()) \
                             AND ((SELECT role FROM target) <> 'admin' OR (SELECT n FROM others) > 0) \
                             RETURNING 1) \
                     SELECT me.role, (SELECT role FROM target), (SELECT n FROM others), EXISTS (SELECT 1 FROM del) FROM me"),

    TodoList => concat!("WITH ", me!(), " \
                 SELECT me.role, x.tenant_id, x.id, x.title, x.complete, x.created_at, x.updated_at \
                 FROM me LEFT JOIN LATERAL ( \
                   SELECT tenant_id, id, title, complete, created_at, updated_at FROM todos \
                   WHERE tenant_id = $1::uuid AND ($2::bool IS NULL OR complete = $2::bool) \
                     AND (created_at, id) > ($3::timestamptz, $4::uuid) \
                   ORDER BY created_at, id LIMIT $5::int8) x ON true"),
    TodoCreate => concat!("WITH ", me!(), ", \
                   ins AS (INSERT INTO todos (tenant_id, id, title, complete) \
                           SELECT $1::uuid, $2::uuid, $3::text, $4::bool FROM me WHERE me.role IN ('admin', 'member') \
                           RETURNING tenant_id, id, title, complete, created_at, updated_at) \
                   SELECT me.role, ins.tenant_id, ins.id, ins.title, ins.complete, ins.created_at, ins.updated_at \
                   FROM me LEFT JOIN ins ON true"),
    TodoGet => concat!("WITH ", me!(), " \
                SELECT me.role, t.tenant_id, t.id, t.title, t.complete, t.created_at, t.updated_at \
                FROM me LEFT JOIN todos t ON t.tenant_id = $1::uuid AND t.id = $2::uuid"),
    TodoUpdate => concat!("WITH ", me!(), ", \
                   upd AS (UPDATE todos SET title = coalesce($3::text, title), complete = coalesce($4::bool, complete), \
                                            updated_at = now() \
                           WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM me WHERE role IN ('admin', 'member')) \
                           RETURNING tenant_id, id, title, complete, created_at, updated_at) \
                   SELECT me.role, upd.tenant_id, upd.id, upd.title, upd.complete, upd.created_at, upd.updated_at \
                   FROM me LEFT JOIN upd ON true"),
    TodoDelete => concat!("WITH ", me!(), ", \
                   del AS (DELETE FROM todos WHERE tenant_id = $1::uuid AND id = $2::uuid \
                           AND EXISTS (SELECT 1 FROM me WHERE role IN ('admin', 'member')) RETURNING id) \
                   SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"),
    /// GET /api/todos: every tenant the caller belongs to (the all-memberships scope).
    TodoListAll => "SELECT tenant_id, id, title, complete, created_at, updated_at FROM todos \
                    WHERE tenant_id = ANY (app_tenant_ids()) AND ($1::bool IS NULL OR complete = $1::bool) \
                      AND (created_at, id) > ($2::timestamptz, $3::uuid) \
                    ORDER BY created_at, id LIMIT $4::int8",
}
