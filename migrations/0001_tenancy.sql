-- Tenants, users, memberships and todos, isolated by row-level security.
--
-- Every request runs in one transaction that first sets two transaction-local settings
-- (set_config(..., true)), and every policy is keyed on them:
--   app.user_id     the caller's user id
--   app.tenant_ids  the tenants this transaction may see, as a uuid[] literal; the API resolves it
--                   from the caller's memberships inside the same transaction
-- An unset or empty setting matches nothing: a transaction that forgot to set its scope sees no
-- rows and can write none (fail closed), instead of seeing everything.

CREATE FUNCTION app_user_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE FUNCTION app_tenant_ids() RETURNS uuid[]
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(nullif(current_setting('app.tenant_ids', true), ''), '{}')::uuid[] $$;

CREATE TABLE tenants (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A user is an identity from the token issuer (`sub`). Its id is derived from the subject
-- (UUIDv5), so every request knows the caller's id without a lookup.
CREATE TABLE users (
  id         uuid        PRIMARY KEY,
  subject    text        NOT NULL UNIQUE CHECK (char_length(subject) BETWEEN 1 AND 255),
  name       text        CHECK (char_length(name) BETWEEN 1 AND 200),
  email      text        CHECK (char_length(email) BETWEEN 3 AND 254),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Emails are stored lower-cased by the API; the index makes them unique anyway.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- GET /api/users pages by (created_at, id).
CREATE INDEX users_created_idx ON users (created_at, id);

CREATE TABLE memberships (
  tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id)
);
-- The caller's tenants (scope resolution, GET /api/tenants, GET /api/todos).
CREATE INDEX memberships_user_idx ON memberships (user_id, tenant_id);
-- GET /api/tenants/{id}/members pages by (created_at, user_id).
CREATE INDEX memberships_list_idx ON memberships (tenant_id, created_at, user_id);

CREATE TABLE todos (
  tenant_id  uuid         NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id         uuid         NOT NULL DEFAULT gen_random_uuid(),
  title      varchar(256) NOT NULL CHECK (title <> ''),
  complete   bool         NOT NULL DEFAULT false,
  created_at timestamptz  NOT NULL DEFAULT now(),
  updated_at timestamptz  NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
-- GET /api/tenants/{id}/todos and GET /api/todos page by (created_at, id), optionally filtered
-- on complete.
CREATE INDEX todos_list_idx ON todos (tenant_id, created_at, id);
CREATE INDEX todos_complete_list_idx ON todos (tenant_id, complete, created_at, id);

-- Row-level security, enabled and forced (the owner is subject to it too).
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE todos ENABLE ROW LEVEL SECURITY;
ALTER TABLE todos FORCE ROW LEVEL SECURITY;

CREATE POLICY tenants_in_scope ON tenants
  USING (id = ANY (app_tenant_ids()))
  WITH CHECK (id = ANY (app_tenant_ids()));

CREATE POLICY todos_in_scope ON todos
  USING (tenant_id = ANY (app_tenant_ids()))
  WITH CHECK (tenant_id = ANY (app_tenant_ids()));

-- The caller may always read their own memberships (that is how the scope is resolved);
-- everything else about memberships needs the tenant in scope.
CREATE POLICY memberships_read ON memberships FOR SELECT
  USING (tenant_id = ANY (app_tenant_ids()) OR user_id = app_user_id());
CREATE POLICY memberships_insert ON memberships FOR INSERT
  WITH CHECK (tenant_id = ANY (app_tenant_ids()));
CREATE POLICY memberships_update ON memberships FOR UPDATE
  USING (tenant_id = ANY (app_tenant_ids()))
  WITH CHECK (tenant_id = ANY (app_tenant_ids()));
CREATE POLICY memberships_delete ON memberships FOR DELETE
  USING (tenant_id = ANY (app_tenant_ids()));

-- A user row is visible to its owner and to members of the tenants in scope; only its owner
-- may write it.
CREATE POLICY users_read ON users FOR SELECT
  USING (id = app_user_id()
         OR id IN (SELECT m.user_id FROM memberships m WHERE m.tenant_id = ANY (app_tenant_ids())));
CREATE POLICY users_insert ON users FOR INSERT
  WITH CHECK (id = app_user_id());
CREATE POLICY users_update ON users FOR UPDATE
  USING (id = app_user_id())
  WITH CHECK (id = app_user_id());
CREATE POLICY users_delete ON users FOR DELETE
  USING (id = app_user_id());

-- The runtime role gets exactly the DML the API needs and nothing else.
REVOKE ALL ON tenants, users, memberships, todos FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, users, memberships, todos TO app_runtime;
REVOKE ALL ON FUNCTION app_user_id(), app_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_user_id(), app_tenant_ids() TO app_runtime;
