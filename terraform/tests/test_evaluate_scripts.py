"""scripts/psql.sh and scripts/migrate.sh, run against stand-ins for `aws`, `db-token`, `psql`,
`terraform` and the migrator (nothing talks to AWS or a database).

What is checked is what each script hands on: which token it asks for (RDS, DSQL DbConnect or
DbConnectAdmin) and from which tool, the psql connection string (database, user, TLS verified
against the engine's CA bundle), the migrator's environment (DB_ENGINE, DB_AUTH, DB_USER,
DSQL_RUNTIME_ROLE_ARN), the defaults read from `terraform output`, the refusals, and that the token
never reaches the output, not even under `bash -x`. The scripts run from a copy of the repository's
scripts/ and certificates, so a real terraform/ state next to them is never read.
(The same scripts through the real IAM stand-in: crates/db-token/tests/psql_script.rs and
crates/devserver/tests/migrate_script.rs.)
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tfconfig import tf_dir

REPO = tf_dir().parent
TOKEN = "abcdefghij.dsql.eu-central-1.on.aws/?Action=DbConnectAdmin&X-Amz-Signature=0123456789SECRET"
HOST = "abcdefghijklmnopqrstuvwxyz.dsql.eu-central-1.on.aws"
AURORA_HOST = "app.cluster-abc123xyz.eu-central-1.rds.amazonaws.com"
ROLE_ARN = "arn:aws:iam::123456789012:role/service/tenant-api-lambda"

# Each stand-in logs its argv (one JSON line) to $STUB_LOG/<name>.
TOKEN_TOOL = r'''#!/usr/bin/env python3
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.path.join(os.environ["STUB_LOG"], name), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
if os.environ.get("STUB_FAIL") == name:
    print("aws: error: argument operation: Invalid choice", file=sys.stderr)
    sys.exit(252)
print(os.environ["STUB_TOKEN"])
'''

PSQL = r'''#!/usr/bin/env python3
import json, os, sys
with open(os.path.join(os.environ["STUB_LOG"], "psql"), "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "password": os.environ.get("PGPASSWORD")}) + "\n")
print("psql connected")
'''

TERRAFORM = r'''#!/usr/bin/env python3
import json, os, sys
with open(os.path.join(os.environ["STUB_LOG"], "terraform"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
outputs = json.loads(os.environ.get("STUB_TF_OUTPUTS", "{}"))
args = sys.argv[1:]
if "output" in args and "-raw" in args:
    name = args[-1]
    if outputs.get(name) is None:
        print("Error: Unsupported value for raw output", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write(str(outputs[name]))
else:
    sys.exit(2)
'''

MIGRATOR = r'''#!/usr/bin/env python3
import json, os, sys
keep = {k: v for k, v in os.environ.items() if k.startswith(("DB_", "DSQL_")) or k == "AWS_REGION"}
with open(os.path.join(os.environ["STUB_LOG"], "migrator"), "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "env": keep}) + "\n")
print("up to date, nothing to apply")
'''

DSQL_OUTPUTS = {
    "db_engine": "dsql", "db_host": HOST, "db_port": 5432, "db_name": "postgres", "db_user": "app_runtime",
    "aws_region": "eu-central-1", "lambda_iam_role_arn": ROLE_ARN,
}


class Repo:
    """A copy of the scripts and certificates, with stand-ins on PATH."""

    def __init__(self, tmp: Path, tf_outputs: dict | None):
        self.root = tmp / "repo"
        shutil.copytree(REPO / "scripts", self.root / "scripts")
        shutil.copytree(REPO / "crates" / "pgconn" / "certs", self.root / "crates" / "pgconn" / "certs")
        (self.root / "terraform").mkdir()
        if tf_outputs is not None:
            (self.root / "terraform" / ".terraform").mkdir()
        self.tf_outputs = tf_outputs or {}
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.log = tmp / "log"
        self.log.mkdir()
        for name, body in (("aws", TOKEN_TOOL), ("db-token", TOKEN_TOOL), ("psql", PSQL),
                           ("terraform", TERRAFORM), ("devserver", MIGRATOR)):
            path = self.bin / name
            path.write_text(body, encoding="utf-8")
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def run(self, script: str, *args: str, trace: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
        base = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "HOME": str(self.root),
            "STUB_LOG": str(self.log),
            "STUB_TOKEN": TOKEN,
            "STUB_TF_OUTPUTS": json.dumps(self.tf_outputs),
            "DEVSERVER_BIN": str(self.bin / "devserver"),
        }
        cmd = ["bash", *(["-x"] if trace else []), str(self.root / "scripts" / script), *args]
        return subprocess.run(cmd, capture_output=True, text=True, env={**base, **env}, timeout=60)

    def calls(self, name: str) -> list:
        path = self.log / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def cert(self, name: str) -> str:
        return str(self.root / "crates" / "pgconn" / "certs" / name)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path, None)


@pytest.fixture
def deployed(tmp_path: Path) -> Repo:
    """After `terraform apply` with db_engine = "dsql": the scripts read its outputs."""
    return Repo(tmp_path, DSQL_OUTPUTS)


def conninfo(repo: Repo) -> dict[str, str]:
    (call,) = repo.calls("psql")
    return dict(part.split("=", 1) for part in call["argv"][0].split())


# ---------------------------------------------------------------------------
# psql.sh
# ---------------------------------------------------------------------------

DSQL_ENV = {"DB_HOST": HOST, "AWS_REGION": "eu-central-1"}


@pytest.mark.parametrize("selector", [{"DB_ENGINE": "dsql"}, {"DB_AUTH": "dsql-admin"}], ids=["engine", "auth"])
def test_psql_dsql_as_admin_with_the_aws_cli(repo: Repo, selector: dict):
    proc = repo.run("psql.sh", "-c", "select 1", **DSQL_ENV, **selector)
    assert proc.returncode == 0, proc.stderr
    assert repo.calls("aws") == [["dsql", "generate-db-connect-admin-auth-token", "--hostname", HOST,
                                  "--region", "eu-central-1"]]
    info = conninfo(repo)
    assert info == {"host": HOST, "port": "5432", "dbname": "postgres", "user": "admin",
                    "sslmode": "verify-full", "sslrootcert": repo.cert("amazon-root-cas.pem")}
    (call,) = repo.calls("psql")
    assert call["password"] == TOKEN and call["argv"][1:] == ["-c", "select 1"]
    assert TOKEN not in proc.stdout + proc.stderr


@pytest.mark.parametrize("user", [{"DB_USER": "app_runtime"}, {}], ids=["named", "default"])
def test_psql_dsql_custom_role_gets_a_dbconnect_token(repo: Repo, user: dict):
    """DB_AUTH=dsql asks for a custom role: DB_USER, else the API's app_runtime."""
    proc = repo.run("psql.sh", **DSQL_ENV, DB_ENGINE="dsql", DB_AUTH="dsql", **user)
    assert proc.returncode == 0, proc.stderr
    assert repo.calls("aws") == [["dsql", "generate-db-connect-auth-token", "--hostname", HOST,
                                  "--region", "eu-central-1"]]
    assert conninfo(repo)["user"] == "app_runtime" and conninfo(repo)["dbname"] == "postgres"


def test_psql_dsql_with_db_token(repo: Repo):
    proc = repo.run("psql.sh", **DSQL_ENV, DB_ENGINE="dsql", PSQL_TOKEN_TOOL="db-token",
                    DB_TOKEN_BIN=str(repo.bin / "db-token"), DB_HOSTADDR="127.0.0.1", DB_PORT="6543")
    assert proc.returncode == 0, proc.stderr
    assert repo.calls("aws") == []
    assert repo.calls("db-token") == [["--dsql", "--host", HOST, "--region", "eu-central-1", "--admin"]]
    info = conninfo(repo)
    assert info["hostaddr"] == "127.0.0.1" and info["port"] == "6543" and info["user"] == "admin"


def test_psql_dsql_defaults_from_terraform_outputs(deployed: Repo):
    """db_engine = "dsql" in the outputs: admin (not the outputs' db_user) on postgres."""
    proc = deployed.run("psql.sh")
    assert proc.returncode == 0, proc.stderr
    assert deployed.calls("aws") == [["dsql", "generate-db-connect-admin-auth-token", "--hostname", HOST,
                                      "--region", "eu-central-1"]]
    info = conninfo(deployed)
    assert (info["host"], info["dbname"], info["user"]) == (HOST, "postgres", "admin")
    assert info["sslrootcert"] == deployed.cert("amazon-root-cas.pem")


def test_psql_dsql_ca_file_override(repo: Repo, tmp_path: Path):
    ca = tmp_path / "standin-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    proc = repo.run("psql.sh", **DSQL_ENV, DB_ENGINE="dsql", DB_CA_FILE=str(ca))
    assert proc.returncode == 0, proc.stderr
    assert conninfo(repo)["sslrootcert"] == str(ca)


def test_psql_token_never_in_a_trace(repo: Repo):
    proc = repo.run("psql.sh", trace=True, **DSQL_ENV, DB_ENGINE="dsql")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "sslmode=verify-full" in out, "the trace is on after the token"
    assert "X-Amz-Signature" not in out and "SECRET" not in out, out


def test_psql_aurora_unchanged(repo: Repo):
    proc = repo.run("psql.sh", DB_HOST=AURORA_HOST, AWS_REGION="eu-central-1")
    assert proc.returncode == 0, proc.stderr
    assert repo.calls("aws") == [["rds", "generate-db-auth-token", "--hostname", AURORA_HOST, "--port", "5432",
                                  "--username", "app_runtime", "--region", "eu-central-1"]]
    info = conninfo(repo)
    assert (info["dbname"], info["user"]) == ("app", "app_runtime")
    assert info["sslrootcert"] == repo.cert("rds-ca-bundle.pem")
    assert repo.calls("terraform") == [], "DB_HOST given: no terraform output read"


@pytest.mark.parametrize(("env", "message"), [
    ({"DB_ENGINE": "dsql", "DB_AUTH": "dsql", "DB_USER": "admin"}, "admin logs in with a DbConnectAdmin token"),
    ({"DB_ENGINE": "dsql", "DB_USER": "app_runtime", "DB_AUTH": "dsql-admin"}, "logs in as admin only"),
    ({"DB_ENGINE": "mysql"}, "DB_ENGINE must be postgres or dsql"),
    ({"DB_ENGINE": "dsql", "DB_AUTH": "password"}, "DB_AUTH must be iam, dsql or dsql-admin"),
    ({"DB_ENGINE": "dsql", "AWS_REGION": ""}, "AWS_REGION is not set"),
])
def test_psql_refusals(repo: Repo, env: dict, message: str):
    proc = repo.run("psql.sh", **{**DSQL_ENV, **env})
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert repo.calls("aws") == [] and repo.calls("psql") == []


def test_psql_old_aws_cli_says_what_to_do(repo: Repo):
    proc = repo.run("psql.sh", **DSQL_ENV, DB_ENGINE="dsql", STUB_FAIL="aws")
    assert proc.returncode != 0
    assert "aws dsql generate-db-connect-admin-auth-token failed" in proc.stderr
    assert "PSQL_TOKEN_TOOL=db-token" in proc.stderr
    assert repo.calls("psql") == []


# ---------------------------------------------------------------------------
# migrate.sh
# ---------------------------------------------------------------------------

def migrator_env(repo: Repo) -> dict:
    (call,) = repo.calls("migrator")
    assert call["argv"] == ["migrate"]
    return call["env"]


def test_migrate_dsql_from_terraform_outputs(deployed: Repo):
    proc = deployed.run("migrate.sh")
    assert proc.returncode == 0, proc.stderr
    env = migrator_env(deployed)
    assert env == {
        "DB_ENGINE": "dsql",
        "DB_AUTH": "dsql-admin",
        "DB_USER": "admin",
        "DB_NAME": "postgres",
        "DB_HOST": HOST,
        "DB_PORT": "5432",
        "DB_TLS": "verify-full",
        "DB_CA_FILE": deployed.cert("amazon-root-cas.pem"),
        "AWS_REGION": "eu-central-1",
        "DSQL_RUNTIME_ROLE_ARN": ROLE_ARN,  # the API function's role, mapped to app_runtime
    }


def test_migrate_dsql_from_the_environment(repo: Repo):
    proc = repo.run("migrate.sh", **DSQL_ENV, DB_ENGINE="dsql", DSQL_RUNTIME_ROLE_ARN=ROLE_ARN)
    assert proc.returncode == 0, proc.stderr
    env = migrator_env(repo)
    assert (env["DB_AUTH"], env["DB_USER"], env["DB_NAME"]) == ("dsql-admin", "admin", "postgres")
    assert env["DSQL_RUNTIME_ROLE_ARN"] == ROLE_ARN
    assert repo.calls("terraform") == []


def test_migrate_dsql_without_a_role_says_so(repo: Repo):
    proc = repo.run("migrate.sh", **DSQL_ENV, DB_AUTH="dsql-admin")
    assert proc.returncode == 0, proc.stderr
    assert "DSQL_RUNTIME_ROLE_ARN is not set" in proc.stderr
    env = migrator_env(repo)
    assert "DSQL_RUNTIME_ROLE_ARN" not in env and env["DB_ENGINE"] == "dsql"


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--bootstrap-roles"], {}, "--bootstrap-roles is for Aurora PostgreSQL"),
    ([], {"DB_USER": "app_runtime"}, "DSQL migrations run as admin"),
    ([], {"DB_AUTH": "dsql"}, "DSQL migrations run as admin"),
    ([], {"DSQL_RUNTIME_ROLE_ARN": "arn:aws:iam::123456789012:role/x'; DROP ROLE admin; --"},
     "DSQL_RUNTIME_ROLE_ARN must be an IAM role"),
    ([], {"DSQL_RUNTIME_ROLE_ARN": "tenant-api-lambda"}, "DSQL_RUNTIME_ROLE_ARN must be an IAM role"),
    ([], {"DSQL_RUNTIME_ROLE_ARN": "arn:aws:iam::123456789012:user/alice"}, "DSQL_RUNTIME_ROLE_ARN must be an IAM role"),
])
def test_migrate_dsql_refusals(repo: Repo, args: list, env: dict, message: str):
    proc = repo.run("migrate.sh", *args, **{**DSQL_ENV, "DB_ENGINE": "dsql", **env})
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert repo.calls("migrator") == []


def test_migrate_aurora_unchanged(repo: Repo):
    proc = repo.run("migrate.sh", DB_HOST=AURORA_HOST, AWS_REGION="eu-central-1", DSQL_RUNTIME_ROLE_ARN=ROLE_ARN)
    assert proc.returncode == 0, proc.stderr
    env = migrator_env(repo)
    assert (env["DB_ENGINE"], env["DB_AUTH"], env["DB_USER"], env["DB_NAME"]) == ("postgres", "iam", "app_owner", "app")
    assert env["DB_CA_FILE"] == repo.cert("rds-ca-bundle.pem")


def test_migrate_password_url_passes_through(repo: Repo):
    proc = repo.run("migrate.sh", "--bootstrap-roles", MIGRATE_DATABASE_URL="postgres://u:p@localhost/app")
    assert proc.returncode == 0, proc.stderr
    (call,) = repo.calls("migrator")
    assert call["argv"] == ["migrate", "--bootstrap-roles"]
    assert "DB_ENGINE" not in call["env"] and "DB_AUTH" not in call["env"]
