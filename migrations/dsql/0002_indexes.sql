-- Indexes, built asynchronously on DSQL (the migrator waits for each job; on a local
-- PostgreSQL it drops the ASYNC).

-- The caller's identity.
CREATE UNIQUE INDEX ASYNC IF NOT EXISTS users_identity_key ON users (issuer, subject);
-- GET /api/users pages by (created_at, id).
CREATE INDEX ASYNC IF NOT EXISTS users_created_idx ON users (created_at, id);
-- The caller's memberships: every scope is resolved from them.
CREATE INDEX ASYNC IF NOT EXISTS memberships_user_idx ON memberships (user_id, tenant_id);
-- GET /api/tenants/{id}/members pages by (created_at, user_id).
CREATE INDEX ASYNC IF NOT EXISTS memberships_list_idx ON memberships (tenant_id, created_at, user_id);
-- Todo lists page by (created_at, id), optionally filtered on complete.
CREATE INDEX ASYNC IF NOT EXISTS todos_list_idx ON todos (tenant_id, created_at, id);
CREATE INDEX ASYNC IF NOT EXISTS todos_complete_list_idx ON todos (tenant_id, complete, created_at, id);
-- Invitation codes are unique, and reached by their hash.
CREATE UNIQUE INDEX ASYNC IF NOT EXISTS invitations_code_key ON invitations (code_hash);
CREATE INDEX ASYNC IF NOT EXISTS invitations_list_idx ON invitations (tenant_id, created_at, id);
