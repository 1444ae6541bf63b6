-- Plans and count quotas (issue 24; README "Plans and limits").
--
-- A tenant's plan is a name from the deployment's plan catalogue (`PLANS`, crates/limits);
-- NULL is the catalogue's default plan, so that changing the default moves every tenant that
-- never had a plan set. `scripts/tenant.sh plan` sets it, as the owner.
ALTER TABLE tenants ADD COLUMN plan text CHECK (plan ~ '^[a-z0-9-]{1,32}$');

-- The quota `q` of key `k` (a tenant, or for 'tenants_per_user' the caller) under the plan
-- catalogue `names` (the default plan first) and its values of this quota, `caps`: the key's
-- plan, that plan's cap, and how many the key holds, counted up to the cap.
--
-- No race: it first takes a transaction-level advisory lock on (q, k), so that a second
-- transaction creating under the same quota waits here until the first ends; it counts in a
-- fresh snapshot (a VOLATILE function's query takes one in READ COMMITTED), so it sees what
-- the first committed. The caller's statement writes only when `used < cap`.
--
-- It runs as the owner to count memberships of a tenant the caller is joining (not yet in
-- scope), and answers only for a key the caller may see: a tenant in scope, a tenant whose
-- invitation code the caller holds ('members'), or the caller themself. Otherwise no row.
CREATE FUNCTION app_quota_room(q text, k uuid, names text[], caps bigint[])
  RETURNS TABLE (plan text, cap bigint, used bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    caller_scope text := current_setting('app.tenant_ids', true);
    i int;
  BEGIN
    IF q = 'tenants_per_user' THEN
      IF k IS DISTINCT FROM app_user_id() THEN RETURN; END IF;
      i := 1;
    ELSE
      IF NOT (k = ANY (app_tenant_ids())
              OR (q = 'members' AND EXISTS (SELECT 1 FROM public.invitations x
                                            WHERE x.tenant_id = k AND x.code_hash = app_invitation()))) THEN
        RETURN;
      END IF;
      PERFORM set_config('app.tenant_ids', ARRAY[k]::text, true);
      i := coalesce(array_position(names, (SELECT x.plan FROM public.tenants x WHERE x.id = k)), 1);
    END IF;
    plan := names[i];
    cap := caps[i];
    PERFORM pg_advisory_xact_lock(hashtextextended('quota/' || q || '/' || k::text, 0));
    CASE q
      WHEN 'todos' THEN
        SELECT count(*) INTO used FROM (SELECT 1 FROM public.todos x WHERE x.tenant_id = k LIMIT cap) c;
      WHEN 'members' THEN
        SELECT count(*) INTO used FROM (SELECT 1 FROM public.memberships x WHERE x.tenant_id = k LIMIT cap) c;
      WHEN 'pending_invitations' THEN
        SELECT count(*) INTO used
          FROM (SELECT 1 FROM public.invitations x WHERE x.tenant_id = k AND x.expires_at > now() LIMIT cap) c;
      WHEN 'tenants_per_user' THEN
        SELECT count(*) INTO used
          FROM (SELECT 1 FROM public.memberships x WHERE x.user_id = k AND x.role = 'admin' LIMIT cap) c;
    END CASE;
    PERFORM set_config('app.tenant_ids', coalesce(caller_scope, ''), true);
    RETURN NEXT;
  END
  $$;

-- POST /api/tenants within the caller's quota of tenants ('tenants_per_user', the default
-- plan's: a user has no plan of their own). The tenant's columns are NULL when the quota is
-- full; the quota's are always there.
CREATE FUNCTION app_create_tenant_in_quota(p_id uuid, p_name text, names text[], caps bigint[])
  RETURNS TABLE (id uuid, name text, role text, created_at timestamptz, plan text, cap bigint, used bigint)
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    r record;
  BEGIN
    SELECT * INTO r FROM public.app_quota_room('tenants_per_user', app_user_id(), names, caps);
    plan := r.plan;
    cap := r.cap;
    used := r.used;
    IF r.used IS NOT NULL AND r.used < r.cap THEN
      SELECT c.id, c.name, c.role, c.created_at INTO id, name, role, created_at
        FROM public.app_create_tenant(p_id, p_name) c;
    END IF;
    RETURN NEXT;
  END
  $$;

REVOKE ALL ON FUNCTION app_quota_room(text, uuid, text[], bigint[]),
  app_create_tenant_in_quota(uuid, text, text[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_quota_room(text, uuid, text[], bigint[]),
  app_create_tenant_in_quota(uuid, text, text[], bigint[]) TO app_runtime;
