-- An invitation is worth its maker's admin role: when the admin who made it is demoted, removed,
-- leaves, or deletes their account, every invitation they made in that tenant is revoked, in the
-- same transaction as the change. Nobody gets back, through an invitation made earlier, a role
-- that was since taken away; and no invitation grants more than its maker holds when it is
-- accepted (only admins make invitations, and only while they are admins do these count).
--
-- A trigger, so that the rule holds whatever statement changes a membership (the API's, a
-- cascade from a deleted account, an operator's). It runs as the owner, which row-level security
-- binds too: the policy below lets the owner delete invitations, and nothing else calls it (a
-- trigger function cannot be called directly).
CREATE FUNCTION app_revoke_invitations_of_former_admin() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
  BEGIN
    IF TG_OP = 'DELETE' OR NEW.role <> 'admin' THEN
      DELETE FROM public.invitations i WHERE i.tenant_id = OLD.tenant_id AND i.created_by = OLD.user_id;
    END IF;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION app_revoke_invitations_of_former_admin() FROM PUBLIC;

-- (A DELETE with a WHERE clause needs to see the rows too: the owner reads them for it.)
CREATE POLICY invitations_maker_revoked ON invitations FOR DELETE TO app_owner USING (true);
CREATE POLICY invitations_owner_read ON invitations FOR SELECT TO app_owner USING (true);

CREATE TRIGGER memberships_revoke_invitations
  AFTER UPDATE OF role OR DELETE ON memberships
  FOR EACH ROW WHEN (OLD.role = 'admin')
  EXECUTE FUNCTION app_revoke_invitations_of_former_admin();

-- A deleted account takes the invitations it made with it (they used to stay, with no maker).
ALTER TABLE invitations DROP CONSTRAINT invitations_created_by_fkey;
ALTER TABLE invitations ADD CONSTRAINT invitations_created_by_fkey
  FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE;

-- An invitation with no maker (made before this migration) is not accepted either.
CREATE OR REPLACE FUNCTION app_invited(t uuid, r text) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT EXISTS (SELECT 1 FROM public.invitations i
                       WHERE i.tenant_id = t AND i.code_hash = app_invitation() AND i.role = r
                         AND i.created_by IS NOT NULL AND i.expires_at > now()) $$;

-- Invitations made before this migration by admins who are admins no longer. The owner reads
-- every membership here only: row-level security is not forced on its tables for the rest of this
-- transaction, which holds their locks until it commits.
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
ALTER TABLE invitations NO FORCE ROW LEVEL SECURITY;
DELETE FROM invitations i
 WHERE NOT EXISTS (SELECT 1 FROM memberships m
                    WHERE m.tenant_id = i.tenant_id AND m.user_id = i.created_by AND m.role = 'admin');
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
