-- Membership copies that only the control database can vouch for, fences that come first, and
-- deleted tenants fenced where they lived.
--
-- 1. Signed grants. A dedicated database's copy of a membership used to be made from whatever
--    role the runtime role passed in, and any copy could be dropped by anyone with the runtime
--    role's login, in the control database too. Now the control database signs what it knows
--    (HMAC-SHA-256 with a key per dedicated database, which the runtime role cannot read):
--      app_member_grant(t, g)          the caller's own role in t, for a copy at generation g
--      app_fence_grant(t, u)           the right to fence u's membership of t: t's admins and u
--      app_tenant_fence_grant(t)       the right to fence tenant t away: t's admins
--    and a dedicated database acts only on a grant signed with its own key, issued within the
--    last two minutes (app_member_copy, app_member_fence, app_tenant_away). In the control
--    database no key is installed, so those refuse; in a dedicated one no tenant is placed, so
--    the grants answer nothing. Each function leaves the caller's scope as it found it.
-- 2. Fences first. A membership change of a dedicated tenant first fences the copy there (drops
--    it, raises its generation, and blocks new copies for up to 60 s), then commits in the
--    control database, then fences again and lifts the block. If the dedicated database cannot
--    be reached for the first fence, the change is refused and nothing changes; if it cannot be
--    reached for the second, the copy is already gone and the block runs out by itself, after
--    which a copy is made only from a grant the control database signs then. No copy made from a
--    read older than the change can serve.
-- 3. A dedicated tenant is fenced `away` in its database before the control database deletes it:
--    if removing its rows there fails, nothing routes to them (a re-created tenant of the same id
--    is sent to the registry, and from there to where it lives now).

-- The key of each dedicated database (control database), and the key of this database when it
-- is a dedicated one. Only the owner reads them; scripts/tenant.sh and scripts/migrate.sh
-- install them.
CREATE TABLE database_keys (
  database_id uuid  PRIMARY KEY REFERENCES databases (id) ON DELETE CASCADE,
  key         bytea NOT NULL CHECK (octet_length(key) = 32)
);
CREATE TABLE copy_key (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  key      bytea   NOT NULL CHECK (octet_length(key) = 32)
);
REVOKE ALL ON database_keys, copy_key FROM PUBLIC;

-- While a membership change is under way: no copy of it is made until then. The block belongs
-- to the change that set it (its token): another change's fence does not lift it.
ALTER TABLE member_fences ADD COLUMN blocked_until timestamptz;
ALTER TABLE member_fences ADD COLUMN block_token bigint;

-- 60 bits from the strong random source behind gen_random_uuid(): generations and block tokens
-- that nobody can guess ahead (a counter could be: someone about to be removed could have a copy
-- grant signed for the generation the removal will set).
CREATE FUNCTION app_random_bigint() RETURNS bigint
  LANGUAGE sql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT ('x' || substr(replace(gen_random_uuid()::text, '-', ''), 17, 15))::bit(60)::bigint $$;

-- HMAC-SHA-256 (RFC 2104) on PostgreSQL's sha256(), so that no extension is needed.
CREATE FUNCTION app_hmac(k bytea, m bytea) RETURNS bytea
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE
    ipad bytea := decode(repeat('36', 64), 'hex');
    opad bytea := decode(repeat('5c', 64), 'hex');
  BEGIN
    IF octet_length(k) > 64 THEN
      k := sha256(k);
    END IF;
    FOR i IN 0 .. octet_length(k) - 1 LOOP
      ipad := set_byte(ipad, i, get_byte(ipad, i) # get_byte(k, i));
      opad := set_byte(opad, i, get_byte(opad, i) # get_byte(k, i));
    END LOOP;
    RETURN sha256(opad || sha256(ipad || m));
  END
  $$;

-- What a grant signs: its kind, tenant, user (or the nil id), detail, number and issue time
-- (milliseconds since the epoch, control database's clock).
CREATE FUNCTION app_grant_message(what text, t uuid, u uuid, detail text, n bigint, issued bigint) RETURNS bytea
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT convert_to(what || '|' || t::text || '|' || u::text || '|' || detail || '|' || n::text || '|' || issued::text, 'UTF8') $$;

CREATE FUNCTION app_now_ms() RETURNS bigint
  LANGUAGE sql VOLATILE
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- The key that signs grants for tenant t (control database), or NULL when t is not placed in a
-- dedicated database that has one.
CREATE FUNCTION app_grant_key(t uuid) RETURNS bytea
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, public, pg_temp
  AS $$ SELECT k.key FROM public.tenant_placements p JOIN public.database_keys k ON k.database_id = p.database_id
        WHERE p.tenant_id = t $$;

-- Whether `mac` is this database's signature of the message, issued within two minutes.
CREATE FUNCTION app_grant_valid(what text, t uuid, u uuid, detail text, n bigint, issued bigint, mac bytea) RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, public, pg_temp
  AS $$ SELECT coalesce(abs(app_now_ms() - issued) <= 120000
                        AND EXISTS (SELECT 1 FROM public.copy_key c
                                    WHERE app_hmac(c.key, app_grant_message(what, t, u, detail, n, issued)) = mac), false) $$;

REVOKE ALL ON FUNCTION app_hmac(bytea, bytea), app_grant_message(text, uuid, uuid, text, bigint, bigint), app_now_ms(),
  app_random_bigint(),
  app_grant_key(uuid), app_grant_valid(text, uuid, uuid, text, bigint, bigint, bytea) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Grants (control database). Each answers for the caller (app.user_id) only, reading the
-- caller's own role with app_role_in (0002), which row-level security lets the owner see.

-- The caller's role in dedicated tenant t, signed for a copy at generation g; no row when the
-- caller is not a member.
CREATE FUNCTION app_member_grant(t uuid, g bigint) RETURNS TABLE (grant_role text, issued bigint, mac bytea)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    r text := app_role_in(t);
    k bytea := app_grant_key(t);
    at bigint := app_now_ms();
  BEGIN
    IF r IS NULL OR g IS NULL THEN
      RETURN;
    END IF;
    -- No key (a dedicated database that scripts/migrate.sh has not reached yet): a row without
    -- a signature, so that the API can tell a member it cannot serve (503) from a stranger.
    RETURN QUERY SELECT r, at, CASE WHEN k IS NOT NULL THEN app_hmac(k, app_grant_message('copy', t, app_user_id(), r, g, at)) END;
  END
  $$;

-- The right to fence user u's membership of dedicated tenant t: two grants with one fresh token,
-- one that blocks new copies for 60 s (before the change) and one that lifts that block (after
-- it): for t's admins, and for u themself. No rows otherwise.
CREATE FUNCTION app_fence_grant(t uuid, u uuid) RETURNS TABLE (block_secs int, token bigint, issued bigint, mac bytea)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    k bytea := app_grant_key(t);
    at bigint := app_now_ms();
    tok bigint := app_random_bigint();
  BEGIN
    IF k IS NULL OR u IS NULL OR app_user_id() IS NULL THEN
      RETURN;
    END IF;
    IF app_user_id() <> u AND app_role_in(t) IS DISTINCT FROM 'admin' THEN
      RETURN;
    END IF;
    RETURN QUERY SELECT s, tok, at, app_hmac(k, app_grant_message('fence', t, u, s::text || ':' || tok::text, 0, at))
      FROM (VALUES (60), (0)) v (s);
  END
  $$;

-- The right to fence dedicated tenant t away in its database (`away`: true) or to take that
-- fence back (false): for t's admins.
CREATE FUNCTION app_tenant_fence_grant(t uuid, away boolean) RETURNS TABLE (issued bigint, mac bytea)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    k bytea := app_grant_key(t);
    at bigint := app_now_ms();
  BEGIN
    IF away IS NULL OR app_role_in(t) IS DISTINCT FROM 'admin' THEN
      RETURN;
    END IF;
    -- No key (a dedicated database scripts/migrate.sh has not reached): a row without a
    -- signature, so that the API refuses the delete (503) rather than delete unfenced.
    RETURN QUERY SELECT at, CASE WHEN k IS NOT NULL
                            THEN app_hmac(k, app_grant_message('tenant', t, '00000000-0000-0000-0000-000000000000', away::text, 0, at)) END;
  END
  $$;

-- ---------------------------------------------------------------------------------------------
-- Acting on grants (dedicated database).

DROP FUNCTION app_member_copy(uuid, text, bigint);
DROP FUNCTION app_member_fence(uuid, uuid);

-- The copy of the caller's membership of tenant t with role r, on the control database's grant
-- for generation g: 'made'; 'blocked' while a change of it is under way; 'refused' when the
-- generation moved on since the grant's read (a change overtook it) or t is not here; 'invalid'
-- when the grant is not this database's signature for this caller, fresh (a stale placement, a
-- wrong key, clocks apart: the API answers 503 and logs it).
CREATE FUNCTION app_member_copy(t uuid, r text, g bigint, issued bigint, mac bytea) RETURNS text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    caller_scope text := current_setting('app.tenant_ids', true);
    f record;
  BEGIN
    IF app_user_id() IS NULL OR NOT app_grant_valid('copy', t, app_user_id(), r, g, issued, mac) THEN
      RETURN 'invalid';
    END IF;
    -- One at a time with app_member_fence for this membership.
    PERFORM pg_advisory_xact_lock(hashtextextended(t::text || '/' || app_user_id()::text, 0));
    SELECT x.generation, x.blocked_until INTO f FROM public.member_fences x
     WHERE x.tenant_id = t AND x.user_id = app_user_id();
    IF f.blocked_until > clock_timestamp() THEN
      RETURN 'blocked';
    END IF;
    IF r NOT IN ('admin', 'member', 'viewer') OR NOT EXISTS (SELECT 1 FROM public.tenants x WHERE x.id = t)
       OR coalesce(f.generation, 0) <> g THEN
      RETURN 'refused';
    END IF;
    PERFORM set_config('app.tenant_ids', ARRAY[t]::text, true);
    INSERT INTO public.users AS u (id, subject) VALUES (app_user_id(), app_user_id()::text)
      ON CONFLICT (id) DO NOTHING;
    INSERT INTO public.memberships AS m (tenant_id, user_id, role) VALUES (t, app_user_id(), r)
      ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role;
    PERFORM set_config('app.tenant_ids', coalesce(caller_scope, ''), true);
    RETURN 'made';
  END
  $$;

-- On the control database's grant (`secs` and `token` from app_fence_grant): drops the copy of
-- user u's membership of tenant t, gives it a new random generation (no copy made from an
-- earlier read can be written, and nobody can have a grant for the new one), and blocks new
-- copies for `secs` seconds as change `token`; with 0, lifts the block if it is still that
-- change's. Returns the new generation. A grant that is not valid here raises TM004.
CREATE FUNCTION app_member_fence(t uuid, u uuid, secs int, token bigint, issued bigint, mac bytea) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    caller_scope text := current_setting('app.tenant_ids', true);
    g bigint := app_random_bigint();
  BEGIN
    IF NOT app_grant_valid('fence', t, u, secs::text || ':' || token::text, 0, issued, mac) THEN
      RAISE EXCEPTION 'no valid grant to fence this membership here' USING ERRCODE = 'TM004';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(t::text || '/' || u::text, 0));
    IF secs > 0 THEN
      INSERT INTO public.member_fences AS f (tenant_id, user_id, generation, blocked_until, block_token)
        VALUES (t, u, g, clock_timestamp() + secs * interval '1 second', token)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET generation = g,
          blocked_until = greatest(f.blocked_until, excluded.blocked_until), block_token = token;
    ELSE
      INSERT INTO public.member_fences AS f (tenant_id, user_id, generation) VALUES (t, u, g)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET generation = g,
          blocked_until = CASE WHEN f.block_token = token THEN NULL ELSE f.blocked_until END,
          block_token = CASE WHEN f.block_token = token THEN NULL ELSE f.block_token END;
    END IF;
    PERFORM set_config('app.tenant_ids', ARRAY[t]::text, true);
    DELETE FROM public.memberships m WHERE m.tenant_id = t AND m.user_id = u;
    PERFORM set_config('app.tenant_ids', coalesce(caller_scope, ''), true);
    RETURN g;
  END
  $$;

-- On the control database's grant: fences tenant t `away` here (away: true), so that nothing
-- is served from its rows; or takes that fence back (false), when the delete it preceded failed.
CREATE FUNCTION app_tenant_away(t uuid, away boolean, issued bigint, mac bytea) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  BEGIN
    IF NOT app_grant_valid('tenant', t, '00000000-0000-0000-0000-000000000000', away::text, 0, issued, mac) THEN
      RAISE EXCEPTION 'no valid grant to fence this tenant here' USING ERRCODE = 'TM004';
    END IF;
    IF away THEN
      INSERT INTO public.tenant_fences AS f (tenant_id, state) VALUES (t, 'away')
        ON CONFLICT (tenant_id) DO UPDATE SET state = 'away', lease_until = NULL, mover = NULL, updated_at = now();
    ELSE
      DELETE FROM public.tenant_fences f WHERE f.tenant_id = t AND f.state = 'away';
    END IF;
    RETURN true;
  END
  $$;

-- Copies made before this migration were made without a grant: they go (every database; in
-- the control database no membership is a copy). A copy's user row carries its id as subject
-- and nothing else (users_copy in 0004), which no registered user's row does.
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
DELETE FROM memberships m USING users u
 WHERE u.id = m.user_id AND u.issuer IS NULL AND u.subject = u.id::text AND u.name IS NULL AND u.email IS NULL;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

REVOKE ALL ON FUNCTION app_member_grant(uuid, bigint), app_fence_grant(uuid, uuid),
  app_tenant_fence_grant(uuid, boolean), app_member_copy(uuid, text, bigint, bigint, bytea),
  app_member_fence(uuid, uuid, int, bigint, bigint, bytea), app_tenant_away(uuid, boolean, bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_member_grant(uuid, bigint), app_fence_grant(uuid, uuid),
  app_tenant_fence_grant(uuid, boolean), app_member_copy(uuid, text, bigint, bigint, bytea),
  app_member_fence(uuid, uuid, int, bigint, bigint, bytea), app_tenant_away(uuid, boolean, bigint, bytea) TO app_runtime;
