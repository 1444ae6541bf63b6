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

step "Rust tests"
cargo test --workspace --locked

# REQUIRE_ALL=1 (set by .ci/run): a missing tool fails the run instead of skipping a step.
skip_or_fail() {
  if [ "${REQUIRE_ALL:-}" = 1 ]; then die "$1"; fi
  echo "SKIPPED: $1"
}

step "arm64 package: scripts/package.sh, then the process tests against it under qemu"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ "$(uname -m)" = aarch64 ] || [ -n "$qemu" ]; then
  pkg=$(mktemp -d)
  trap 'rm -rf "$pkg"' EXIT
  scripts/package.sh --arch arm64 --out "$pkg/lambda.zip"
  (cd "$pkg" && unzip -q lambda.zip)
  BOOTSTRAP_UNDER_TEST="$pkg/bootstrap" BOOTSTRAP_RUNNER="$qemu" cargo test -q --locked -p lambda --test process
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

step "Terraform checks"
scripts/check-terraform.sh

echo
echo "all tests passed"
