-- Per-tenant and per-caller rate limits (issue 24; crates/limits, README "Plans and limits").
--
-- One row per key: a tenant (its requests on tenant routes, charged only for its members), or
-- a caller (their requests on routes outside a tenant). `tat_us` is the key's GCRA state, the
-- theoretical arrival time in microseconds since the Unix epoch on the database's clock; every
-- instance takes small leases of it (`granted` requests at a time, after the request's own
-- COMMIT, in a transaction of their own) and spends them without asking again. A row is made
-- the first time its key takes a lease. Rows hold a number, nothing of the tenant's data.
CREATE TABLE rate_limits (
  kind    text    NOT NULL CHECK (kind IN ('tenant', 'caller')),
  key     uuid    NOT NULL,
  tat_us  bigint  NOT NULL DEFAULT 0,
  granted bigint  NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, key)
);

-- A caller charges their own budget, and a tenant's only while it is in their scope (they are
-- a member of it).
ALTER TABLE rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY rate_limits_own ON rate_limits
  USING ((kind = 'caller' AND key = app_user_id()) OR (kind = 'tenant' AND key = ANY (app_tenant_ids())))
  WITH CHECK ((kind = 'caller' AND key = app_user_id()) OR (kind = 'tenant' AND key = ANY (app_tenant_ids())));

REVOKE ALL ON rate_limits FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON rate_limits TO app_runtime;
