-- The schema on Aurora DSQL: the tables of migrations/0001-0003 as they are after those
-- migrations, without what DSQL does not have.
--
-- - No row-level security: every statement the API sends is bound to the caller's scope by
--   construction (crates/store/src/dsql.rs, checked by crates/store/tests/dsql_scope.rs).
-- - No foreign keys: a deleted tenant is marked (deleted_at), which hides its rows at once
--   (every scope joins tenants that are not); its rows are removed in batches, its own row
--   last. A deleted user's memberships go in the same transaction.
-- - No array columns: an idempotency record's results are one text.
-- - One DDL statement per transaction: the migrator runs each statement of a file on its own,
--   and every statement is idempotent (IF NOT EXISTS), so a file interrupted midway is simply
--   run again.
-- - Users are keyed on (issuer, subject) from the start: there are no legacy users to claim.

CREATE TABLE IF NOT EXISTS tenants (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set when the tenant is deleted: from then on no scope includes it, and its rows are
  -- removed in batches, its own row last, so that its id cannot be taken again while anything
  -- of the tenant is left.
  deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS users (
  id         uuid        PRIMARY KEY,
  issuer     text        NOT NULL CHECK (char_length(issuer) BETWEEN 1 AND 512),
  subject    text        NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 255),
  name       text        CHECK (char_length(name) BETWEEN 1 AND 200),
  email      text        CHECK (char_length(email) BETWEEN 3 AND 254),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS memberships (
  tenant_id  uuid        NOT NULL,
  user_id    uuid        NOT NULL,
  role       text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE IF NOT EXISTS todos (
  tenant_id  uuid         NOT NULL,
  id         uuid         NOT NULL DEFAULT gen_random_uuid(),
  title      varchar(256) NOT NULL CHECK (title <> ''),
  complete   bool         NOT NULL DEFAULT false,
  created_at timestamptz  NOT NULL DEFAULT now(),
  updated_at timestamptz  NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS invitations (
  tenant_id  uuid        NOT NULL,
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  code_hash  bytea       NOT NULL CHECK (octet_length(code_hash) = 32),
  role       text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
  email      text        CHECK (char_length(email) BETWEEN 3 AND 254),
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
  user_id     uuid        NOT NULL,
  tenant_id   uuid        NOT NULL,
  key         text        NOT NULL CHECK (char_length(key) = 64),
  fingerprint bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
  -- Per statement of the request, its rows as JSON, each after a U+001E separator.
  results     text        NOT NULL DEFAULT '',
  claim       uuid        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (user_id, tenant_id, key)
);
