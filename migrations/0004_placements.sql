-- Silo tenants: a tenant's todos live either here (pooled) or in a dedicated database, and every
-- database (this one and each dedicated one) carries this same schema.
--
-- In the control database (the one the API is configured with):
--   databases          the dedicated databases tenants can be placed in
--   tenant_placements  which tenants live in which of them (no row: pooled, here)
-- In every database:
--   tenant_fences      a move in progress ('moving': writes refused while the mover's lease
--                      holds) or a tenant that has left this database ('away')
--   member_fences      how many times each membership copied here has changed since: a copy is
--                      made only from a control database read that no change has overtaken
--
-- Every transaction on a tenant's todos ends with app_fence_check(tenant, writing), after its
-- statements: a request that reaches a database the tenant is not (or no longer) served from
-- fails there, in the same transaction, and the API retries it where the registry says.

CREATE TABLE databases (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The operator's name for it (scripts/tenant.sh shows it).
  name       text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  host       text        NOT NULL CHECK (char_length(host) BETWEEN 1 AND 253),
  -- Connect here instead of resolving host (libpq's hostaddr); TLS and tokens still use host.
  hostaddr   inet,
  port       int         NOT NULL CHECK (port BETWEEN 1 AND 65535),
  dbname     text        NOT NULL CHECK (char_length(dbname) BETWEEN 1 AND 63),
  -- The runtime role there (its owner role is the operator's business: scripts/tenant.sh).
  db_user    text        NOT NULL CHECK (char_length(db_user) BETWEEN 1 AND 63),
  -- 'iam': a token signed for this host, port and user; 'password': the control database's
  -- password source (local development only).
  auth       text        NOT NULL CHECK (auth IN ('iam', 'password')),
  tls        text        NOT NULL CHECK (tls IN ('verify-full', 'disable')),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_placements (
  tenant_id   uuid        PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  database_id uuid        NOT NULL REFERENCES databases (id),
  -- Raised by every switch: what an instance's cached placement is compared against.
  epoch       bigint      NOT NULL,
  placed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_placements_database_idx ON tenant_placements (database_id);

CREATE TABLE tenant_fences (
  -- No foreign key: a database keeps the fence of a tenant whose rows it no longer holds.
  tenant_id   uuid        PRIMARY KEY,
  state       text        NOT NULL CHECK (state IN ('moving', 'away')),
  -- 'moving' only: writes are refused until then; a mover that died stops fencing by itself.
  lease_until timestamptz CHECK ((state = 'moving') = (lease_until IS NOT NULL)),
  mover       uuid,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE member_fences (
  tenant_id  uuid   NOT NULL,
  user_id    uuid   NOT NULL,
  -- Raised by every change of the membership (after the change, in the control database): a
  -- copy is made only if no change came between its read of this and its read of the control
  -- database.
  generation bigint NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);

-- Raises TM002 when tenant t is not served from this database (it is placed elsewhere, or has
-- left it), TM001 on a write while a move holds its lease, and, in a dedicated database
-- (`dedicated`), TM003 when the caller has no copy of a membership of t here (the transaction
-- resolved no scope): the API then makes the copy from the control database and runs the
-- request again, and nothing of this attempt (an idempotency claim) is left behind. Runs after the transaction's own
-- statements: a writer has then taken its lock on todos, so a mover that fences and then waits
-- for that lock (LOCK TABLE todos IN SHARE MODE) sees every write either committed or refused.
CREATE FUNCTION app_fence_check(t uuid, writing boolean, dedicated boolean) RETURNS boolean
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    f record;
  BEGIN
    IF EXISTS (SELECT 1 FROM public.tenant_placements p WHERE p.tenant_id = t) THEN
      RAISE EXCEPTION 'the tenant is placed in another database' USING ERRCODE = 'TM002';
    END IF;
    SELECT x.state, x.lease_until INTO f FROM public.tenant_fences x WHERE x.tenant_id = t;
    IF f.state = 'away' THEN
      RAISE EXCEPTION 'the tenant has moved to another database' USING ERRCODE = 'TM002';
    END IF;
    IF writing AND f.state = 'moving' AND f.lease_until > now() THEN
      RAISE EXCEPTION 'the tenant is being moved; writes resume when the move ends' USING ERRCODE = 'TM001';
    END IF;
    IF dedicated AND NOT (t = ANY (app_tenant_ids())) THEN
      -- The generation of the caller's membership here, read before the API reads the control
      -- database: app_member_copy takes it back.
      RAISE EXCEPTION 'no copy of the caller''s membership here' USING ERRCODE = 'TM003',
        DETAIL = coalesce((SELECT g.generation FROM public.member_fences g
                           WHERE g.tenant_id = t AND g.user_id = app_user_id()), 0)::text;
    END IF;
    RETURN true;
  END
  $$;

-- Raises TM002 unless tenant t lives in database d (NULL: here, pooled), in the control
-- database: a membership change checks that the copies it fenced are the ones that count.
CREATE FUNCTION app_placement_is(t uuid, d uuid) RETURNS boolean
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  BEGIN
    IF (SELECT p.database_id FROM public.tenant_placements p WHERE p.tenant_id = t) IS DISTINCT FROM d THEN
      RAISE EXCEPTION 'the tenant is placed elsewhere than the request assumed' USING ERRCODE = 'TM002';
    END IF;
    RETURN true;
  END
  $$;

-- In a dedicated database: the copy of the caller's membership of tenant t (role r, from the
-- control database), which its requests are checked against. The user row it needs carries the
-- id alone (no issuer, no name, no email: identity stays in the control database). Only if the
-- membership's generation is still g, the one read (in TM003's detail) before the role was read
-- from the control database: a change since then (app_member_fence) makes that role stale.
-- Returns whether the copy was made.
CREATE FUNCTION app_member_copy(t uuid, r text, g bigint) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  BEGIN
    IF app_user_id() IS NULL THEN
      RETURN false;
    END IF;
    -- One at a time with app_member_fence for this membership.
    PERFORM pg_advisory_xact_lock(hashtextextended(t::text || '/' || app_user_id()::text, 0));
    IF r NOT IN ('admin', 'member', 'viewer')
       OR NOT EXISTS (SELECT 1 FROM public.tenants x WHERE x.id = t)
       OR coalesce((SELECT f.generation FROM public.member_fences f
                    WHERE f.tenant_id = t AND f.user_id = app_user_id()), 0) <> g THEN
      RETURN false;
    END IF;
    PERFORM set_config('app.tenant_ids', ARRAY[t]::text, true);
    INSERT INTO public.users AS u (id, subject) VALUES (app_user_id(), app_user_id()::text)
      ON CONFLICT (id) DO NOTHING;
    INSERT INTO public.memberships AS m (tenant_id, user_id, role) VALUES (t, app_user_id(), r)
      ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role;
    RETURN true;
  END
  $$;

-- In a dedicated database, after user u's membership of tenant t changed in the control database
-- (or may have): drops the copy, and raises the generation so that no copy made from a read of
-- the control database from before the change can be written. The member's next request makes
-- a fresh copy. Returns the new generation.
CREATE FUNCTION app_member_fence(t uuid, u uuid) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    g bigint;
  BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(t::text || '/' || u::text, 0));
    INSERT INTO public.member_fences AS f (tenant_id, user_id, generation) VALUES (t, u, 1)
      ON CONFLICT (tenant_id, user_id) DO UPDATE SET generation = f.generation + 1
      RETURNING f.generation INTO g;
    PERFORM set_config('app.tenant_ids', ARRAY[t]::text, true);
    DELETE FROM public.memberships m WHERE m.tenant_id = t AND m.user_id = u;
    RETURN g;
  END
  $$;

-- The owner runs the copies (app_member_copy and app_member_fence run as the owner, which row
-- security binds too): it may write the copies these functions make, only in
-- the tenant they put in scope, and user rows that carry an id alone.
CREATE POLICY memberships_copy ON memberships TO app_owner
  USING (tenant_id = ANY (app_tenant_ids()))
  WITH CHECK (tenant_id = ANY (app_tenant_ids()));
CREATE POLICY users_copy ON users FOR INSERT TO app_owner
  WITH CHECK (issuer IS NULL AND subject = id::text AND name IS NULL AND email IS NULL);
-- The operator's tools (scripts/tenant.sh list, as the owner) see every tenant.
CREATE POLICY tenants_owner_read ON tenants FOR SELECT TO app_owner USING (true);
-- The mover (scripts/tenant.sh, as the owner) reads and writes a moving tenant's records.
CREATE POLICY idempotency_move ON idempotency_keys TO app_owner
  USING (tenant_id = ANY (app_tenant_ids()))
  WITH CHECK (tenant_id = ANY (app_tenant_ids()));

-- A dedicated database's schema version is checked when the API connects (behind: 503).
GRANT SELECT ON schema_migrations TO app_runtime;

REVOKE ALL ON databases, tenant_placements, tenant_fences, member_fences FROM PUBLIC;
GRANT SELECT ON databases, tenant_placements, tenant_fences, member_fences TO app_runtime;
REVOKE ALL ON FUNCTION app_fence_check(uuid, boolean, boolean), app_placement_is(uuid, uuid), app_member_copy(uuid, text, bigint),
  app_member_fence(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_fence_check(uuid, boolean, boolean), app_placement_is(uuid, uuid), app_member_copy(uuid, text, bigint),
  app_member_fence(uuid, uuid) TO app_runtime;
