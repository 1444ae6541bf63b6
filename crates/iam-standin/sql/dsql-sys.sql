-- The parts of Aurora DSQL's `sys` schema that the project uses, emulated on PostgreSQL for the
-- IAM stand-in's DSQL mode. Run once per database by the local cluster's superuser: on DSQL
-- these are AWS's, not the user's (so they may use PL/pgSQL, which DSQL refuses to users).
--
-- * `CREATE INDEX ASYNC` (which the stand-in rewrites to sys.__create_index_async) builds the
--   index, records a job in sys.jobs and answers its id, as DSQL does
--   (https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-create-index-async.html);
--   the job stays `submitted` until someone waits for it or reads sys.jobs through
--   sys.wait_for_job, so the migrator's waiting path runs.
-- * `CALL sys.wait_for_job('<id>')` is a procedure, as on DSQL; it answers whether the job
--   completed.
-- * `AWS IAM GRANT role TO 'arn'` / `AWS IAM REVOKE role FROM 'arn'` (rewritten to
--   sys.__iam_mapping) maintain sys.iam_pg_role_mappings
--   (https://docs.aws.amazon.com/aurora-dsql/latest/userguide/using-database-and-iam-roles.html).
-- * Each async index also gets a check of its key's size (dsql_key_<index>): DSQL refuses an
--   index key over 1 KiB; the stand-in answers the check's violation with DSQL's error.
CREATE SCHEMA IF NOT EXISTS sys;
GRANT USAGE ON SCHEMA sys TO PUBLIC;

CREATE TABLE IF NOT EXISTS sys.__jobs (
  job_id text PRIMARY KEY,
  status text NOT NULL CHECK (status IN ('submitted', 'processing', 'completed', 'failed', 'cancelled')),
  details text,
  job_type text NOT NULL DEFAULT 'INDEX_BUILD',
  object_id oid,
  object_name text NOT NULL,
  start_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE VIEW sys.jobs AS
  SELECT job_id, status, details, job_type, 'pg_class'::regclass::oid AS class_id, object_id, object_name,
         start_time, update_time FROM sys.__jobs;
GRANT SELECT ON sys.jobs TO PUBLIC;

CREATE TABLE IF NOT EXISTS sys.__iam_mappings (
  iam_oid bigint GENERATED ALWAYS AS IDENTITY,
  arn text NOT NULL,
  pg_role_name name NOT NULL,
  grantor_pg_role_name name NOT NULL,
  PRIMARY KEY (arn, pg_role_name)
);
CREATE OR REPLACE VIEW sys.iam_pg_role_mappings AS
  SELECT m.iam_oid, m.arn, r.oid AS pg_role_oid, m.pg_role_name, g.oid AS grantor_pg_role_oid, m.grantor_pg_role_name
  FROM sys.__iam_mappings m JOIN pg_roles r ON r.rolname = m.pg_role_name
  LEFT JOIN pg_roles g ON g.rolname = m.grantor_pg_role_name;
GRANT SELECT ON sys.iam_pg_role_mappings TO PUBLIC;

-- Records a job for an index just built, and the check of its key's size.
CREATE OR REPLACE FUNCTION sys.__record_index_job(index_oid oid, key_limit integer) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  -- 26 lower-case base32 characters, as DSQL's job ids are.
  job text := (SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz234567', 1 + floor(random() * 32)::int, 1), '')
               FROM generate_series(1, 26));
  idx record;
  sizes text;
BEGIN
  SELECT c.relname AS index_name, t.oid AS table_oid, t.relname AS table_name INTO idx
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
    WHERE i.indexrelid = index_oid;
  SELECT string_agg(format('coalesce(octet_length(%I::text), 0)', a.attname), ' + ') INTO sizes
    FROM pg_index i, unnest(i.indkey) AS k(attnum) JOIN pg_attribute a ON a.attnum = k.attnum
    WHERE i.indexrelid = index_oid AND a.attrelid = i.indrelid;
  IF sizes IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM pg_constraint WHERE conrelid = idx.table_oid AND conname = 'dsql_key_' || idx.index_name
  ) THEN
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK ((%s) <= %s) NOT VALID',
      idx.table_oid::regclass, 'dsql_key_' || idx.index_name, sizes, key_limit);
  END IF;
  INSERT INTO sys.__jobs (job_id, status, object_id, object_name) VALUES (job, 'submitted', index_oid, idx.index_name);
  RETURN job;
END $$;
REVOKE ALL ON FUNCTION sys.__record_index_job(oid, integer) FROM PUBLIC;

-- `CREATE [UNIQUE] INDEX ASYNC ...` as the stand-in rewrites it: the statement without ASYNC,
-- run as the caller (who must own the table, as on DSQL), then its job.
CREATE OR REPLACE FUNCTION sys.__create_index_async(statement text, index_name text, key_limit integer)
RETURNS TABLE (job_id text) LANGUAGE plpgsql AS $$
DECLARE
  index_oid oid;
BEGIN
  EXECUTE statement;
  SELECT c.oid INTO index_oid FROM pg_class c
    WHERE c.relname = index_name AND c.relkind = 'i' AND c.relnamespace = 'public'::regnamespace;
  job_id := sys.__record_index_job_for_caller(index_oid, key_limit);
  RETURN NEXT;
END $$;
GRANT EXECUTE ON FUNCTION sys.__create_index_async(text, text, integer) TO PUBLIC;

-- The caller may record a job only for an index on a table it owns.
CREATE OR REPLACE FUNCTION sys.__record_index_job_for_caller(index_oid oid, key_limit integer) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                 WHERE i.indexrelid = index_oid AND pg_has_role(session_user, t.relowner, 'USAGE')) THEN
    RAISE EXCEPTION 'must be owner of the table' USING ERRCODE = '42501';
  END IF;
  RETURN sys.__record_index_job(index_oid, key_limit);
END $$;
GRANT EXECUTE ON FUNCTION sys.__record_index_job_for_caller(oid, integer) TO PUBLIC;

-- DSQL's procedure: waits for the job and answers whether it completed (false for a job that
-- failed or that it does not know; it raises nothing).
CREATE OR REPLACE PROCEDURE sys.wait_for_job(job text, INOUT completed boolean DEFAULT NULL)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  found_status text;
BEGIN
  UPDATE sys.__jobs SET status = 'completed', update_time = now()
    WHERE job_id = job AND status IN ('submitted', 'processing');
  SELECT status INTO found_status FROM sys.__jobs WHERE job_id = job;
  completed := coalesce(found_status = 'completed', false);
END $$;
GRANT EXECUTE ON PROCEDURE sys.wait_for_job(text, boolean) TO PUBLIC;

-- `AWS IAM GRANT` / `AWS IAM REVOKE` as the stand-in rewrites them. Only a role that may grant
-- the database role (its member with ADMIN, or one with CREATEROLE) may map an IAM identity to it.
CREATE OR REPLACE PROCEDURE sys.__iam_mapping(do_grant boolean, role_name name, iam_arn text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
    RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = '42704';
  END IF;
  IF NOT (pg_has_role(session_user, role_name, 'USAGE WITH ADMIN OPTION')
          OR (SELECT rolcreaterole FROM pg_roles WHERE rolname = session_user)) THEN
    RAISE EXCEPTION 'permission denied to grant role "%"', role_name USING ERRCODE = '42501';
  END IF;
  IF iam_arn !~ '^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$' THEN
    RAISE EXCEPTION 'invalid IAM ARN: %', iam_arn USING ERRCODE = '22023';
  END IF;
  IF do_grant THEN
    INSERT INTO sys.__iam_mappings (arn, pg_role_name, grantor_pg_role_name)
      VALUES (iam_arn, role_name, session_user) ON CONFLICT DO NOTHING;
  ELSE
    DELETE FROM sys.__iam_mappings WHERE arn = iam_arn AND pg_role_name = role_name;
  END IF;
END $$;
GRANT EXECUTE ON PROCEDURE sys.__iam_mapping(boolean, name, text) TO PUBLIC;

-- For a database whose indexes were built before this file ran (the tests' template, migrated
-- on PostgreSQL directly): the key-size check of every secondary index, with its job completed.
CREATE OR REPLACE FUNCTION sys.__check_index_keys(key_limit integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  idx oid;
  n integer := 0;
BEGIN
  FOR idx IN SELECT i.indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
             WHERE NOT i.indisprimary AND t.relnamespace = 'public'::regnamespace LOOP
    UPDATE sys.__jobs SET status = 'completed' WHERE job_id = sys.__record_index_job(idx, key_limit);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION sys.__check_index_keys(integer) FROM PUBLIC;
