-- The roles of an Aurora PostgreSQL cluster, on a local cluster (scripts/dev.sh and the tests'
-- throwaway clusters), run once by the local cluster's superuser, who plays AWS's `rdsadmin`.
-- Safe to run again.
--
-- Aurora's master user is not a superuser: it has CREATEROLE and CREATEDB and is a member of
-- rds_superuser, which holds some of PostgreSQL's predefined roles; the only superuser is
-- rdsadmin, which AWS keeps
-- (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.MasterAccounts.html,
-- https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Roles.html).
-- Locally the master user is `postgres`, as terraform/cluster.tf names it; whoever runs the
-- role bootstrap, the migrations and tenant.sh's database creation logs in as it, so that a
-- statement that needs a true superuser fails here as it fails on Aurora.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_superuser') THEN
    CREATE ROLE rds_superuser NOLOGIN;
    GRANT pg_monitor, pg_signal_backend, pg_read_all_settings, pg_read_all_stats, pg_stat_scan_tables
      TO rds_superuser WITH ADMIN OPTION;
  END IF;
  -- Granted to the roles that log in with IAM tokens (`migrate.sh --bootstrap-roles --rds-iam`).
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
    CREATE ROLE rds_iam NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'postgres') THEN
    CREATE ROLE postgres LOGIN CREATEROLE CREATEDB IN ROLE rds_superuser;
  ELSIF (SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres') THEN
    -- A server of your own (TEST_DATABASE_URL) whose postgres is a superuser: it stays one.
    RAISE EXCEPTION 'this server has a superuser named postgres; the tests make postgres the Aurora-shaped administrator (no superuser): point TEST_DATABASE_URL at a throwaway server';
  END IF;
END
$$;
ALTER ROLE postgres CREATEROLE CREATEDB;
