-- Membership by consent, identities keyed on (issuer, subject), and roles enforced by the
-- database too.
--
-- 1. Users are keyed on (issuer, subject), and their ids are random: nobody outside the
--    deployment can compute a user's id from a guessable subject. Emails are profile data, not
--    keys (they are unverified): no longer unique.
-- 2. Invitations: an admin invites; the invitee accepts with a single-use code (stored as its
--    SHA-256). Holding the code is the capability: a transaction that sets `app.invitation` to
--    the code's hash sees that invitation, and may enrol its caller with the invited role.
-- 3. Membership writes are role-aware in the policies themselves: only an admin of the tenant
--    adds or changes memberships; anyone may leave. A tenant and its first admin are created by
--    one function (app_create_tenant), so no transaction ever puts a tenant it is not a member
--    of into its own scope.

-- Settings a transaction may set, besides app.user_id and app.tenant_ids:
--   app.issuer, app.subject  the caller's identity, only while registering (app_register)
--   app.invitation           the hex SHA-256 of an invitation code being accepted
CREATE FUNCTION app_issuer() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.issuer', true), '') $$;

CREATE FUNCTION app_subject() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.subject', true), '') $$;

CREATE FUNCTION app_invitation() RETURNS bytea
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT decode(nullif(current_setting('app.invitation', true), ''), 'hex') $$;

-- The caller's role in tenant t, or NULL. It reads through the caller's own view of memberships
-- (a caller may always read their own), so policies on other tables can call it; a policy on
-- memberships may too, since a function is not expanded into the policy (no recursion).
CREATE FUNCTION app_role_in(t uuid) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT m.role FROM public.memberships m WHERE m.tenant_id = t AND m.user_id = app_user_id() $$;

-- ---------------------------------------------------------------------------------------------
-- Users.
ALTER TABLE users ADD COLUMN issuer text CHECK (char_length(issuer) BETWEEN 1 AND 512);
ALTER TABLE users DROP CONSTRAINT users_subject_key;
-- NULL issuer: a user registered before issuers were recorded. It is claimed by the first
-- identity that presents its subject (as before this migration, when the subject alone was the
-- key), and then belongs to that issuer.
CREATE UNIQUE INDEX users_identity_key ON users (issuer, subject);
CREATE INDEX users_legacy_subject_idx ON users (subject) WHERE issuer IS NULL;
DROP INDEX users_email_key;

-- Ids derived from subjects (UUIDv5 under a public constant) could be computed by anyone: give
-- every existing user a random one. Memberships follow the change.
ALTER TABLE memberships DROP CONSTRAINT memberships_user_id_fkey;
ALTER TABLE memberships ADD CONSTRAINT memberships_user_id_fkey
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
UPDATE users SET id = gen_random_uuid();
ALTER TABLE users FORCE ROW LEVEL SECURITY;

-- A registering caller (app.issuer, app.subject set) sees their own row, or the legacy row of
-- their subject, and may claim the latter.
DROP POLICY users_read ON users;
CREATE POLICY users_read ON users FOR SELECT
  USING (id = app_user_id()
         OR id IN (SELECT m.user_id FROM memberships m WHERE m.tenant_id = ANY (app_tenant_ids()))
         OR (subject = app_subject() AND (issuer = app_issuer() OR issuer IS NULL)));
CREATE POLICY users_claim ON users FOR UPDATE
  USING (issuer IS NULL AND subject = app_subject())
  WITH CHECK (issuer = app_issuer() AND subject = app_subject());

-- ---------------------------------------------------------------------------------------------
-- Invitations.
CREATE TABLE invitations (
  tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  code_hash  bytea       NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
  role       text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
  -- When set, only a caller whose token carries this email, verified, may accept.
  email      text        CHECK (char_length(email) BETWEEN 3 AND 254),
  created_by uuid        REFERENCES users (id) ON DELETE SET NULL ON UPDATE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX invitations_list_idx ON invitations (tenant_id, created_at, id);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
-- Admins of a tenant in scope manage its invitations.
CREATE POLICY invitations_admin ON invitations
  USING (tenant_id = ANY (app_tenant_ids()) AND app_role_in(tenant_id) = 'admin')
  WITH CHECK (tenant_id = ANY (app_tenant_ids()) AND app_role_in(tenant_id) = 'admin');
-- The holder of the code sees that one invitation and may consume it (accepting deletes it).
CREATE POLICY invitations_by_code_read ON invitations FOR SELECT
  USING (code_hash = app_invitation());
CREATE POLICY invitations_by_code_accept ON invitations FOR DELETE
  USING (code_hash = app_invitation());

-- ---------------------------------------------------------------------------------------------
-- Memberships: role-aware writes.
DROP POLICY memberships_insert ON memberships;
DROP POLICY memberships_update ON memberships;
DROP POLICY memberships_delete ON memberships;

-- Whether tenant t has no members yet (its creation is under way). A function, so that a
-- policy on memberships can ask without expanding itself.
CREATE FUNCTION app_tenant_is_empty(t uuid) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NOT EXISTS (SELECT 1 FROM public.memberships m WHERE m.tenant_id = t) $$;

-- Whether the invitation being accepted (app.invitation) is valid and offers `role` in t.
CREATE FUNCTION app_invited(t uuid, r text) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT EXISTS (SELECT 1 FROM public.invitations i
                       WHERE i.tenant_id = t AND i.code_hash = app_invitation() AND i.role = r
                         AND i.expires_at > now()) $$;

-- Admins add members; the holder of an invitation code enrols themself with the invited role.
CREATE POLICY memberships_insert ON memberships FOR INSERT
  WITH CHECK ((tenant_id = ANY (app_tenant_ids()) AND app_role_in(tenant_id) = 'admin')
              OR (user_id = app_user_id() AND app_invited(tenant_id, role)));
-- The creator of a brand-new tenant becomes its first admin: only through app_create_tenant,
-- which runs as the owner.
CREATE POLICY memberships_first_admin ON memberships FOR INSERT TO app_owner
  WITH CHECK (user_id = app_user_id() AND role = 'admin' AND tenant_id = ANY (app_tenant_ids())
              AND app_tenant_is_empty(tenant_id));
CREATE POLICY memberships_update ON memberships FOR UPDATE
  USING (tenant_id = ANY (app_tenant_ids()) AND app_role_in(tenant_id) = 'admin')
  WITH CHECK (tenant_id = ANY (app_tenant_ids()) AND app_role_in(tenant_id) = 'admin');
CREATE POLICY memberships_delete ON memberships FOR DELETE
  USING (tenant_id = ANY (app_tenant_ids())
         AND (user_id = app_user_id() OR app_role_in(tenant_id) = 'admin'));

-- ---------------------------------------------------------------------------------------------
-- A tenant and its first admin, the caller (app.user_id), in one step. It runs as the owner so
-- that the runtime role needs no INSERT on tenants; it puts the new tenant in scope for its own
-- statements and gives the caller's scope back before it returns.
CREATE FUNCTION app_create_tenant(p_id uuid, p_name text)
  RETURNS TABLE (id uuid, name text, role text, created_at timestamptz)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  DECLARE
    caller_scope text := current_setting('app.tenant_ids', true);
  BEGIN
    PERFORM set_config('app.tenant_ids', ARRAY[p_id]::text, true);
    RETURN QUERY
      WITH t AS (INSERT INTO public.tenants AS x (id, name) VALUES (p_id, p_name)
                 RETURNING x.id, x.name, x.created_at),
           m AS (INSERT INTO public.memberships AS y (tenant_id, user_id, role)
                 SELECT t.id, app_user_id(), 'admin' FROM t RETURNING y.role)
      SELECT t.id, t.name, m.role, t.created_at FROM t, m;
    PERFORM set_config('app.tenant_ids', coalesce(caller_scope, ''), true);
  END
  $$;

-- ---------------------------------------------------------------------------------------------
-- Grants.
REVOKE INSERT ON tenants FROM app_runtime;
REVOKE ALL ON invitations FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON invitations TO app_runtime;
REVOKE ALL ON FUNCTION app_issuer(), app_subject(), app_invitation(), app_role_in(uuid),
  app_tenant_is_empty(uuid), app_invited(uuid, text), app_create_tenant(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_issuer(), app_subject(), app_invitation(), app_role_in(uuid),
  app_tenant_is_empty(uuid), app_invited(uuid, text), app_create_tenant(uuid, text) TO app_runtime;
