-- Per-tenant and per-caller rate limits (issue 24): one GCRA state per key, as in
-- migrations/0008_rate_limits.sql. Every statement that reads or writes it names the caller's
-- own key or a tenant of theirs (crates/store/tests/dsql_scope.rs).
CREATE TABLE IF NOT EXISTS rate_limits (
  kind    text    NOT NULL CHECK (kind IN ('tenant', 'caller')),
  key     uuid    NOT NULL,
  tat_us  bigint  NOT NULL DEFAULT 0,
  granted bigint  NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, key)
);

GRANT SELECT, INSERT, UPDATE ON rate_limits TO app_runtime;
