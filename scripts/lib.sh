# Shared helpers for the scripts in this directory. Sourced, not run.

die() { echo "error: $*" >&2; exit 1; }

# need TOOL HINT: fails with an install hint when TOOL is not on PATH.
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"; }

# pg_bin PROGRAM: path of a PostgreSQL server program (PATH, Debian's versioned directories,
# Homebrew), or nothing.
pg_bin() {
  local p dir
  if p=$(command -v "$1" 2>/dev/null); then echo "$p"; return; fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) \
             /opt/homebrew/opt/postgresql@16/bin /usr/local/opt/postgresql@16/bin; do
    if [ -x "$dir/$1" ]; then echo "$dir/$1"; return; fi
  done
}

PG_INSTALL_HINT="install the PostgreSQL server package: Debian/Ubuntu 'sudo apt-get install -y postgresql', macOS 'brew install postgresql@16'"

# free_port FIRST LAST: the first TCP port on 127.0.0.1 in the range that nothing listens on.
free_port() {
  local p
  for p in $(seq "$1" "$2"); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port between $1 and $2"
}

# as_db_user CMD...: runs CMD as an unprivileged user when we are root (PostgreSQL refuses to
# run as root), as ourselves otherwise. DB_OS_USER names the user (default postgres, or nobody).
as_db_user() {
  if [ "$(id -u)" -ne 0 ]; then "$@"; return; fi
  if command -v runuser >/dev/null 2>&1; then runuser -u "$DB_OS_USER" -- "$@"
  else su -s /bin/sh "$DB_OS_USER" -c "$(printf '%q ' "$@")"; fi
}

if [ "$(id -u)" -eq 0 ] && [ -z "${DB_OS_USER:-}" ]; then
  if id postgres >/dev/null 2>&1; then DB_OS_USER=postgres; else DB_OS_USER=nobody; fi
fi

# tf_output NAME: `terraform output -raw NAME` of terraform/ after `terraform apply` there, or
# nothing (no terraform, no state, or a null output).
tf_output() {
  command -v terraform >/dev/null 2>&1 && [ -d "$root/terraform/.terraform" ] || return 0
  terraform -chdir="$root/terraform" output -raw "$1" 2>/dev/null || true
}

# resolve_db_engine: sets and exports DB_ENGINE, postgres or dsql: DB_ENGINE itself (postgres,
# postgresql, aurora-postgresql or dsql), else dsql when DB_AUTH is dsql or dsql-admin, else
# (without DB_HOST) `terraform output db_engine`, else postgres.
resolve_db_engine() {
  local engine=${DB_ENGINE:-}
  if [ -z "$engine" ]; then
    case ${DB_AUTH:-} in dsql | dsql-admin) engine=dsql ;; esac
  fi
  [ -n "$engine" ] || [ -n "${DB_HOST:-}" ] || engine=$(tf_output db_engine)
  case ${engine:-postgres} in
    dsql) DB_ENGINE=dsql ;;
    postgres | postgresql | aurora-postgresql) DB_ENGINE=postgres ;;
    *) die "DB_ENGINE must be postgres or dsql, not '$engine'" ;;
  esac
  export DB_ENGINE
}

# load_db_settings: fills DB_HOST, DB_PORT, DB_NAME, DB_USER and AWS_REGION from the
# environment, or else from `terraform output` (after `terraform apply` in terraform/).
load_db_settings() {
  if [ -z "${DB_HOST:-}" ]; then
    DB_HOST=$(tf_output db_host); DB_PORT=${DB_PORT:-$(tf_output db_port)}; DB_NAME=${DB_NAME:-$(tf_output db_name)}
    DB_USER=${DB_USER:-$(tf_output db_user)}; AWS_REGION=${AWS_REGION:-$(tf_output aws_region)}
  fi
  [ -n "${DB_HOST:-}" ] || die "DB_HOST is not set (nor found in terraform outputs)"
  DB_PORT=${DB_PORT:-5432}; DB_NAME=${DB_NAME:-app}; DB_USER=${DB_USER:-app_runtime}
  AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
  export DB_HOST DB_PORT DB_NAME DB_USER AWS_REGION
}

# ca_file: the CA bundle to verify the server with: DB_CA_FILE, else the one in the repo for the
# engine: Amazon Trust Services' roots for Aurora DSQL (DB_ENGINE=dsql, or a DSQL token), the
# RDS bundle otherwise.
ca_file() {
  if [ -n "${DB_CA_FILE:-}" ]; then echo "$DB_CA_FILE"
  elif [ "${DB_ENGINE:-}" = dsql ] || [ "${DB_AUTH:-}" = dsql ] || [ "${DB_AUTH:-}" = dsql-admin ]; then
    echo "$root/crates/pgconn/certs/amazon-root-cas.pem"
  else echo "$root/crates/pgconn/certs/rds-ca-bundle.pem"; fi
}

# The running `scripts/dev.sh` records how to reach its throwaway database here (passwords
# included: mode 600, removed when dev.sh stops), for psql.sh and migrate.sh.
DEV_STATE=${DEV_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.dev/state}

# load_dev_state: when no database is configured (no DB_HOST, DATABASE_URL or
# MIGRATE_DATABASE_URL) and a dev.sh is running, reads its state (DEV_HOST, DEV_PORT, DEV_DB,
# DEV_ENGINE, DEV_ADMIN_PASSWORD, DEV_RUNTIME_PASSWORD) and succeeds; fails otherwise.
load_dev_state() {
  [ -z "${DB_HOST:-}${DATABASE_URL:-}${MIGRATE_DATABASE_URL:-}" ] && [ -r "$DEV_STATE" ] || return 1
  { local xtrace; xtrace=$(set +o | grep xtrace); set +x; } 2>/dev/null
  # shellcheck disable=SC1090
  . "$DEV_STATE"
  eval "$xtrace"
  kill -0 "${DEV_PID:-0}" 2>/dev/null
}

# write_dev_state FILE VAR...: writes the named variables to FILE (mode 600), no trace.
write_dev_state() {
  { local xtrace; xtrace=$(set +o | grep xtrace); set +x; } 2>/dev/null
  local file=$1; shift
  mkdir -p "$(dirname "$file")"
  (umask 077; : >"$file")
  local var
  for var in "$@"; do printf '%s=%q\n' "$var" "${!var}" >>"$file"; done
  eval "$xtrace"
}
