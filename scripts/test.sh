#!/usr/bin/env bash
# Usage: scripts/test.sh
#
# The whole test suite, as CI runs it: the Rust tests (unit, integration against a throwaway
# PostgreSQL started by the tests, process tests of the real binaries) and the offline
# Terraform checks. Needs Rust and the PostgreSQL server package (the tests say what is missing);
# .ci/run installs everything on a clean Debian machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
need cargo "install Rust from https://rustup.rs"
[ -n "$(pg_bin initdb)" ] || [ -n "${TEST_DATABASE_URL:-}" ] || die "PostgreSQL server programs not found: $PG_INSTALL_HINT"

step() { printf '\n==> %s\n' "$*"; }

step "Build: every test and every binary that a test, or a script a test runs, needs; once"
# One build, with the tests' feature set, before any test runs: a test that builds (dev.sh
# building the IAM stand-in with other features, say) can outlast its own time limit on a cold
# cache. The binaries are handed to the tests and the scripts they run; and a `cargo` first on
# PATH refuses to run, so a test or script that tries to build fails at once, saying so.
cargo=$(command -v cargo)
"$cargo" test --workspace --locked --no-run
bin_dir="${CARGO_TARGET_DIR:-$root/target}/debug"
export DEVSERVER_BIN="$bin_dir/devserver" IAM_STANDIN_BIN="$bin_dir/iam-standin" DB_TOKEN_BIN="$bin_dir/db-token"
for bin in "$DEVSERVER_BIN" "$IAM_STANDIN_BIN" "$DB_TOKEN_BIN"; do [ -x "$bin" ] || die "the build made no $bin"; done
no_cargo=$(mktemp -d)
trap 'rm -rf "$no_cargo"' EXIT
cat >"$no_cargo/cargo" <<'SH'
#!/bin/sh
echo "error: a test or a script it runs invoked 'cargo $*': tests must use the binaries scripts/test.sh built (DEVSERVER_BIN, IAM_STANDIN_BIN, DB_TOKEN_BIN)" >&2
exit 97
SH
chmod +x "$no_cargo/cargo"
export PATH="$no_cargo:$PATH"

step "Rust tests"
"$cargo" test --workspace --locked

# REQUIRE_ALL=1 (set by .ci/run): a missing tool fails the run instead of skipping a step.
skip_or_fail() {
  if [ "${REQUIRE_ALL:-}" = 1 ]; then die "$1"; fi
  echo "SKIPPED: $1"
}

step "Aurora DSQL: the endpoint suite and the isolation property test on the DSQL schema and statements"
# The same test binaries again, on the DSQL schema (migrations/dsql) with the DSQL statements
# (crates/statements/src/dsql/); the IAM-path tests log in with DSQL tokens through the stand-in
# in DSQL mode. Then the DSQL faults: a lost COMMIT retried with a key, connections recycled at
# their maximum age, and 30% of commits failing with 40001 / OC000.
# (--workspace and test names rather than -p: the same feature set as above, so nothing rebuilds.)
api_suite=(--test bad_input --test big_tenant --test endpoints --test errors --test iam --test idempotency --test invitations --test isolation_property --test users
  --test openapi --test round_trips --test quotas)
TEST_DB_ENGINE=dsql "$cargo" test --workspace --locked -q "${api_suite[@]}"
TEST_DB_ENGINE=dsql "$cargo" test --workspace --locked -q --test faults -- s13 s14 s15

step "Silo tenants: the endpoint suite and the isolation property test with pooled and dedicated tenants"
# The same test binaries again, with every other tenant moved, right after it is created, to a
# dedicated database in a second throwaway cluster behind its own IAM stand-in (another host
# name, verify-full TLS, its own tokens): see crates/api/tests/common and docs/silo.md.
TEST_PLACEMENT=mixed "$cargo" test --workspace --locked -q --test bad_input --test endpoints --test idempotency --test invitations \
  --test isolation_property --test quotas

step "arm64 package: scripts/package.sh, then the process tests against it under qemu"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ "$(uname -m)" = aarch64 ] || [ -n "$qemu" ]; then
  pkg=$(mktemp -d)
  trap 'rm -rf "$pkg" "$no_cargo"' EXIT
  # package.sh is no test: it builds, with the real cargo.
  PATH="$(dirname "$cargo"):$PATH" scripts/package.sh --arch arm64 --out "$pkg/lambda.zip"
  (cd "$pkg" && unzip -q lambda.zip)
  BOOTSTRAP_UNDER_TEST="$pkg/bootstrap" BOOTSTRAP_RUNNER="$qemu" "$cargo" test -q --locked --workspace --test process
else
  skip_or_fail "no qemu-aarch64 to run the arm64 bootstrap (Debian: apt-get install qemu-user-static)"
fi

step "IAM token vectors still match botocore"
venv=${BOTOCORE_VENV:-$HOME/.cache/tenant-api/venv-botocore}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import botocore, sys; sys.exit(botocore.__version__ != "1.44.5")' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check botocore==1.44.5
fi
"$venv/bin/python" crates/db-auth/tests/data/gen_token_vectors.py --check

step "schemathesis: the OpenAPI document against the running dev server, on PostgreSQL and on the DSQL path"
# Every check, positive and negative data included, in every phase: examples, coverage (the
# schema's boundaries), fuzzing and the stateful phase, which follows the document's links
# (POST /api/tenants -> the tenant's routes, POST invitations -> accept, GET /api/me -> the
# caller's user and memberships, lists -> their items) so that every route is called with ids
# that exist. Invitations are accepted as a second user, so that accepting succeeds and that user
# can then be given another role and removed. Fuzzing and stateful runs repeat within
# SCHEMATHESIS_MAX_TIME seconds; the seed is fixed, so a run is reproducible up to where the time
# ran out.
st_venv=${SCHEMATHESIS_VENV:-$HOME/.cache/tenant-api/venv-schemathesis}
if [ ! -x "$st_venv/bin/st" ] || [ "$("$st_venv/bin/st" --version 2>/dev/null)" != "st, version 4.32.5" ]; then
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5
fi
# dev.sh runs the binaries built above (DEVSERVER_BIN, IAM_STANDIN_BIN).
port=$(free_port 3100 3200)
st_dir=$(mktemp -d)
# The caller's token as the document's bearerAuth (so that checks can leave it out); stateful
# scenarios of up to 12 steps (create a tenant, invite, accept, list members, remove one...);
# links only from the document (inferred ones would dilute them); every warning
# schemathesis shows fails the run (a regex it cannot read means a document it cannot check),
# except "missing test data": the fuzzing phase draws ids at random, and the stateful phase is
# what reaches those routes with real ones.
cat >"$st_dir/schemathesis.toml" <<'TOML'
[auth.openapi.bearerAuth]
bearer = "${ST_TOKEN}"
[phases.stateful]
max-steps = 12
[phases.stateful.inference]
algorithms = []
[warnings]
display = ["missing_auth", "base_url_mismatch", "validation_mismatch", "missing_deserializer", "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "constants_extraction", "unmatched_filter", "unresolvable_reference", "rate_limited", "dictionary_mismatch", "timeout_units"]
fail-on = true
TOML
# Just before a request goes out: invitations are accepted as a second user (when the request
# carries the first one's token: checks that leave it out or forge it stay as they are), and a
# valid Idempotency-Key is made unique (drawn keys repeat, "0", "a", and the same key on another
# request is rightly a 422; invalid ones go as drawn, and the API says 400).
cat >"$st_dir/hooks.py" <<'PY'
import os
import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[ \t]*[!-~](?:[ -~]{0,253}[!-~])?[ \t]*")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers if case.headers is not None else {}
    for name, value in headers.items():
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.fullmatch(value):
            headers[name] = f"st-{uuid.uuid4()}"
    accepting = case.method.upper() == "POST" and case.operation.path == "/api/invitations/accept"
    if accepting and headers.get("Authorization") == f"Bearer {os.environ['ST_TOKEN']}":
        headers["Authorization"] = f"Bearer {os.environ['ST_INVITEE_TOKEN']}"
PY
# schemathesis_against MAX_TIME [dev.sh options]: the run against `scripts/dev.sh [options]`.
schemathesis_against() {
  local max_time=$1; shift
  local devlog; devlog=$(mktemp)
  # Its own state file: a dev.sh of yours keeps its own.
  DEV_STATE="$st_dir/dev-state" BIND_ADDR=127.0.0.1:$port setsid scripts/dev.sh "$@" >"$devlog" 2>&1 &
  local devpid=$!
  stop_dev() { kill -INT -- "-$devpid" 2>/dev/null || true; wait "$devpid" 2>/dev/null || true; rm -f "$devlog"; }
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$devlog"; stop_dev; die "the dev server did not start"; }
  mint() { DEV_JWT_SECRET=${DEV_JWT_SECRET:-local-development-secret-not-for-production} "$DEVSERVER_BIN" token --sub "$1"; }
  ST_TOKEN=$(mint schemathesis)
  ST_INVITEE_TOKEN=$(mint schemathesis-invitee)
  export ST_TOKEN ST_INVITEE_TOKEN
  set +e
  SCHEMATHESIS_HOOKS="$st_dir/hooks.py" "$st_venv/bin/st" --config-file "$st_dir/schemathesis.toml" --no-color run "http://127.0.0.1:$port/openapi.json" \
    --checks all --phases examples,coverage,fuzzing,stateful \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" \
    --max-time "$max_time" --seed 20261122 --generation-database none \
    --workers 1 --request-timeout 10
  local st_status=$?
  set -e
  stop_dev
  unset ST_TOKEN ST_INVITEE_TOKEN
  [ "$st_status" -eq 0 ] || die "schemathesis found server errors, schema violations or rejected valid data (dev.sh $*)"
}
schemathesis_against "${SCHEMATHESIS_MAX_TIME:-150}"
# And the Aurora DSQL path: its statements and schema, DSQL tokens through the stand-in.
schemathesis_against "${SCHEMATHESIS_DSQL_MAX_TIME:-90}" --dsql
rm -rf "$st_dir"

step "Terraform checks"
scripts/check-terraform.sh

echo
echo "all tests passed"
