#!/usr/bin/env bash
# Offline checks of terraform/ (no AWS provider, no AWS account needed):
#   1. terraform fmt -check -recursive
#   2. checkov static analysis, 0 failed checks required (skips are inline,
#      each with its reason, next to the resource)
#   3. the AWS provider's schema: the configuration checked against the
#      provider versions at both ends of the constraint in versions.tf
#      (terraform/tests/schema_check.py: types, arguments, blocks, required
#      ones, references). The schemas are extracted from the npm packages that
#      cdktf generates from `terraform providers schema -json`
#      (terraform/tests/provider_schema.py), fetched with `npm pack` when
#      missing and cached outside the clone (a few MB each).
#   4. pytest terraform/tests: structure tests on the parsed HCL, evaluation of
#      validations/preconditions with `terraform console`, the schema check's
#      mutation tests, scripts/bootstrap-db.sh against a stand-in AWS CLI, and
#      mutation tests that prove the structure tests fail on a broken
#      configuration.
# `terraform init/validate` needs the provider download; CI does that
# (.github/workflows/ci.yml). Only PyPI (the venvs) and the npm registry (the
# schemas) are contacted, each once; later runs use the caches.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/check-terraform.sh [-h|--help]

Runs terraform fmt -check, checkov and the Terraform tests, offline.
Environment:
  TF_CHECK_VENV   where the Python tools are installed
                  (default: $HOME/.cache/tenant-api/venv-terraform)
  TF_SCHEMA_CACHE where the extracted AWS provider schemas are cached
                  (default: $HOME/.cache/tenant-api/aws-provider-schema)
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

# Pinned tool versions (verified to install and pass together).
CHECKOV_VERSION="3.3.30"
CHECKOV_REQS=("checkov==${CHECKOV_VERSION}")
TEST_REQS=("python-hcl2==8.1.4" "pytest==9.2.0")

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' not found. $2" >&2; exit 1; }
}
need terraform "Install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)."
need python3 "Install Python >= 3.9 with venv support (Debian/Ubuntu: sudo apt-get install python3 python3-venv)."

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d terraform ]] || { echo "error: $ROOT/terraform not found" >&2; exit 1; }

# Terraform: no version check ("checkpoint") over the network; ignore a CLI
# config variable that points at a file that does not exist.
export CHECKPOINT_DISABLE=1
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -e "${TF_CLI_CONFIG_FILE}" ]]; then
  unset TF_CLI_CONFIG_FILE
fi
# Keep the work tree free of __pycache__ from the tests.
export PYTHONDONTWRITEBYTECODE=1

tmp="$(mktemp -d)"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# checkov depends on bc-python-hcl2, which installs a module named `hcl2` just
# like python-hcl2 (which the tests use): they cannot share one venv.
VENV_ROOT="${TF_CHECK_VENV:-$HOME/.cache/tenant-api/venv-terraform}"
CHECKOV_VENV="$VENV_ROOT/checkov"
TESTS_VENV="$VENV_ROOT/tests"

ensure_venv() {
  local dir="$1"
  shift
  local want="$*"
  if [[ -x "$dir/bin/python" && -f "$dir/.requirements" && "$(cat "$dir/.requirements")" == "$want" ]]; then
    return 0
  fi
  echo "==> installing $want into $dir"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  python3 -m venv "$dir" || {
    echo "error: python3 -m venv failed (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2
    exit 1
  }
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  printf '%s' "$want" >"$dir/.requirements"
}

# 1. Formatting ----------------------------------------------------------------
echo "==> terraform fmt -check -recursive terraform"
if ! terraform fmt -check -recursive -diff terraform; then
  echo "error: run 'terraform fmt -recursive terraform'" >&2
  exit 1
fi

# 2. checkov -----------------------------------------------------------------
ensure_venv "$CHECKOV_VENV" "${CHECKOV_REQS[@]}"
echo "==> checkov $("$CHECKOV_VENV/bin/checkov" --version) (offline)"
checkov_status=0
BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
  "$CHECKOV_VENV/bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact \
  >"$tmp/checkov.txt" 2>&1 || checkov_status=$?
cat "$tmp/checkov.txt"
checkov_summary="$(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$tmp/checkov.txt" | head -n1 || true)"
if [[ -z "$checkov_summary" ]]; then
  echo "error: checkov printed no summary (exit $checkov_status)" >&2
  exit 1
fi
checkov_failed="$(sed -E 's/.*Failed checks: ([0-9]+).*/\1/' <<<"$checkov_summary")"
if [[ "$checkov_status" -ne 0 || "$checkov_failed" -ne 0 ]]; then
  echo "error: checkov found $checkov_failed failed check(s) (exit $checkov_status). Fix them, or skip one with" >&2
  echo "       '#checkov:skip=CKV_...:<reason>' inside the resource." >&2
  exit 1
fi

# 3. The provider's schema ------------------------------------------------------
ensure_venv "$TESTS_VENV" "${TEST_REQS[@]}"
export TF_SCHEMA_CACHE="${TF_SCHEMA_CACHE:-$HOME/.cache/tenant-api/aws-provider-schema}"
echo "==> AWS provider schemas (terraform/tests/provider_schemas.json) in $TF_SCHEMA_CACHE"
"$TESTS_VENV/bin/python" terraform/tests/provider_schema.py fetch --cache "$TF_SCHEMA_CACHE"
echo "==> schema check: terraform/ against hashicorp/aws at both ends of its version constraint"
"$TESTS_VENV/bin/python" terraform/tests/schema_check.py --schema-dir "$TF_SCHEMA_CACHE" terraform | tee "$tmp/schema.txt"
schema_summary="$(grep -E '^hashicorp/aws' "$tmp/schema.txt" | sed -E 's/ \(.*\): / /; s/ problem\(s\)/ problems/' | paste -sd, - | sed 's/,/, /g')"

# 4. Tests ---------------------------------------------------------------------
run_pytest() {
  local log="$1"
  shift
  local status=0
  "$TESTS_VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log" || status=$?
  # With pipefail the pipeline fails with pytest's status, not tee's.
  return "$status"
}
echo "==> pytest terraform/tests (structure, evaluation, schema check and its mutations, bootstrap-db.sh)"
run_pytest "$tmp/tests.txt" terraform/tests/test_structure*.py terraform/tests/test_evaluate*.py \
  terraform/tests/test_schema.py terraform/tests/test_bootstrap_script.py
echo "==> pytest terraform/tests/test_mutations.py (each mutation must make the structure tests fail)"
run_pytest "$tmp/mutations.txt" terraform/tests/test_mutations.py

tests_summary="$(grep -Eo '[0-9]+ passed[^=]*' "$tmp/tests.txt" | tail -n1 | sed -E 's/ in [0-9.]+s.*//')"
mutations_passed="$(grep -Eo '[0-9]+ passed' "$tmp/mutations.txt" | tail -n1 | grep -Eo '[0-9]+')"
# One of the mutation tests is the unmodified baseline.
echo "check-terraform: OK: fmt clean; checkov ${CHECKOV_VERSION}: ${checkov_summary}; schema: ${schema_summary}; pytest: ${tests_summary}; mutations caught: $((mutations_passed - 1))/$((mutations_passed - 1))"
