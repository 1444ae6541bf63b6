-- Creates the two database roles the application expects. Run once per cluster (and once per
-- database for the grants) by an administrator: the master user on Aurora, and locally a role
-- shaped like it (`scripts/migrate.sh --bootstrap-roles`). Safe to run again.
--
-- Aurora's master user is not a superuser (a member of rds_superuser, with CREATEROLE and
-- CREATEDB), and PostgreSQL lets only a superuser change the SUPERUSER or BYPASSRLS attribute
-- of a role, even to take it away ("must be superuser to alter superuser roles or change
-- superuser attribute"): so this file never names those attributes for a role that does not
-- have them, and refuses to go on, saying why, when one of the roles does.
--
--   app_owner    owns every table, function and policy; runs migrations. It is subject to
--                row-level security like everyone else (tables use FORCE ROW LEVEL SECURITY).
--   app_runtime  the role the API logs in as. Owns nothing, cannot bypass RLS, gets only the
--                DML it needs (granted by the migrations).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN
    CREATE ROLE app_owner LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_runtime') THEN
    CREATE ROLE app_runtime LOGIN;
  END IF;
END
$$;

DO $$
DECLARE
  privileged text;
BEGIN
  SELECT string_agg(rolname, ', ' ORDER BY rolname) INTO privileged
    FROM pg_roles WHERE rolname IN ('app_owner', 'app_runtime') AND (rolsuper OR rolbypassrls);
  IF privileged IS NULL THEN
    RETURN;
  END IF;
  -- Only a superuser may take SUPERUSER or BYPASSRLS away (a local superuser can; Aurora's
  -- master user cannot, so there the roles must have been made without them).
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'the roles % are superusers or have BYPASSRLS, which would let them step around row-level security', privileged
      USING HINT = 'only a superuser can take those attributes away (on Aurora, AWS support); or drop and re-create the roles';
  END IF;
  ALTER ROLE app_owner NOSUPERUSER NOBYPASSRLS;
  ALTER ROLE app_runtime NOSUPERUSER NOBYPASSRLS;
END
$$;
ALTER ROLE app_owner NOCREATEROLE NOCREATEDB;
ALTER ROLE app_runtime NOCREATEROLE NOCREATEDB NOINHERIT;
-- An idle session ends on the server's side, so that idle Lambda instances do not keep an
-- Aurora Serverless v2 cluster (min 0 ACU) from pausing. The API sets its own value per
-- session too (DB_IDLE_SESSION_TIMEOUT_SECS); this is the default for every other client.
ALTER ROLE app_runtime SET idle_session_timeout = '10min';

-- The migrator (whoever runs this) may act as the owner: migrations run under SET ROLE app_owner.
-- From PostgreSQL 16 (Aurora's default), a CREATEROLE role that creates a role becomes a member
-- of it with ADMIN but without SET (createrole_self_grant is empty by default), so membership
-- alone is not enough there: the grant asks for SET explicitly
-- (https://www.postgresql.org/docs/16/sql-createrole.html).
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    IF current_setting('server_version_num')::int >= 160000 THEN
      IF NOT pg_has_role(current_user, 'app_owner', 'SET') THEN
        EXECUTE format('GRANT app_owner TO %I WITH SET TRUE', current_user);
      END IF;
    ELSIF NOT pg_has_role(current_user, 'app_owner', 'MEMBER') THEN
      EXECUTE format('GRANT app_owner TO %I', current_user);
    END IF;
  END IF;
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO app_owner', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO app_runtime', current_database());
END
$$;

-- PostgreSQL 15 no longer lets PUBLIC create in schema public; the owner needs to.
GRANT USAGE, CREATE ON SCHEMA public TO app_owner;
GRANT USAGE ON SCHEMA public TO app_runtime;
