-- Creates the two database roles the application expects. Run once per cluster (and once per
-- database for the grants) by an administrator: a superuser locally, the master user on Aurora
-- (`scripts/migrate.sh --bootstrap-roles`). Safe to run again.
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

ALTER ROLE app_owner NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
ALTER ROLE app_runtime NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT;
-- An idle session ends on the server's side, so that idle Lambda instances do not keep an
-- Aurora Serverless v2 cluster (min 0 ACU) from pausing. The API sets its own value per
-- session too (DB_IDLE_SESSION_TIMEOUT_SECS); this is the default for every other client.
ALTER ROLE app_runtime SET idle_session_timeout = '10min';

-- The migrator (whoever runs this) may act as the owner: migrations run under SET ROLE app_owner.
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
     AND NOT pg_has_role(current_user, 'app_owner', 'MEMBER') THEN
    EXECUTE format('GRANT app_owner TO %I', current_user);
  END IF;
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO app_owner', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO app_runtime', current_database());
END
$$;

-- PostgreSQL 15 no longer lets PUBLIC create in schema public; the owner needs to.
GRANT USAGE, CREATE ON SCHEMA public TO app_owner;
GRANT USAGE ON SCHEMA public TO app_runtime;
