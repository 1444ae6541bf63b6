-- The runtime role gets exactly the DML the API needs (the migrator creates the role,
-- `CREATE ROLE app_runtime WITH LOGIN`, and maps it to the function's IAM role with
-- `AWS IAM GRANT`; see crates/store/src/migrate.rs). Without row-level security, what keeps
-- tenants apart is the statements themselves.
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO app_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO app_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON memberships TO app_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON todos TO app_runtime;
GRANT SELECT, INSERT, DELETE ON invitations TO app_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO app_runtime;
