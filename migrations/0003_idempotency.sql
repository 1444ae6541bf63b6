-- Exactly-once writes: a write sent with an `Idempotency-Key` records, in the same transaction
-- as its effect, what each of its statements returned. A repeat of the request with the same
-- key finds the record (its claim conflicts) and is answered from it, byte for byte, without
-- running again.
--
-- The record is claimed first in the transaction (a plain INSERT: a concurrent repeat waits on
-- the key, then fails with a unique violation once the first commits, and replays). Each
-- statement of the request then appends its rows, as JSON text, to `results`. Records expire
-- after a day (a setting of the API) and are deleted by a scheduled cleanup, never on the
-- request path.
-- No foreign key to users and no index but the key's: the record is written on the path of every
-- keyed write, and a referential check or a second index would cost each of them. A deleted
-- user's records (their ids are random, never reused) wait for the cleanup like any other.
CREATE TABLE idempotency_keys (
  user_id     uuid        NOT NULL,
  -- The tenant of a tenant route (keys are scoped to it), or the nil UUID.
  tenant_id   uuid        NOT NULL,
  -- The SHA-256 (hex) of the client's key: the key itself, which also seals secrets in the
  -- results (an invitation's code), never reaches the database.
  key         text        NOT NULL CHECK (char_length(key) = 64),
  -- SHA-256 of the method, the path and the body: the same key with another request is 422.
  fingerprint bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
  -- Per statement of the request, its rows as a JSON array of objects (columns in order).
  results     text[]      NOT NULL DEFAULT '{}',
  -- Which request made the record: only that request may drop it (after a 4xx).
  claim       uuid        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (user_id, tenant_id, key)
);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
-- A caller sees and writes their own records only.
CREATE POLICY idempotency_own ON idempotency_keys
  USING (user_id = app_user_id())
  WITH CHECK (user_id = app_user_id());
-- The cleanup function (run as the owner) sees expired records, and nothing else.
CREATE POLICY idempotency_expired ON idempotency_keys FOR SELECT TO app_owner
  USING (expires_at < now());
CREATE POLICY idempotency_expired_delete ON idempotency_keys FOR DELETE TO app_owner
  USING (expires_at < now());

-- Deletes up to `batch` expired records; returns how many. Called by the scheduled cleanup
-- (a batch at a time, so that no transaction grows without bound).
CREATE FUNCTION app_idempotency_cleanup(batch int) RETURNS bigint
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public, pg_temp
  AS $$
    WITH gone AS (
      DELETE FROM public.idempotency_keys k
      WHERE (k.user_id, k.tenant_id, k.key) IN (
        SELECT e.user_id, e.tenant_id, e.key FROM public.idempotency_keys e
        WHERE e.expires_at < now() LIMIT batch)
      RETURNING 1)
    SELECT count(*) FROM gone;
  $$;

REVOKE ALL ON idempotency_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO app_runtime;
REVOKE ALL ON FUNCTION app_idempotency_cleanup(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_idempotency_cleanup(int) TO app_runtime;
