"""scripts/bootstrap-db.sh against a stand-in `aws` CLI (nothing talks to AWS).

The stand-in records every call and answers like the RDS and RDS Data APIs would: the script
must create the database only when it is missing, send migrations/bootstrap/roles.sql one
statement at a time to that database, grant rds_iam, retry while the cluster resumes, and stop
with the command that fixes a cluster without the Data API or an RDS-managed master secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tfconfig import tf_dir

REPO = tf_dir().parent
SCRIPT = REPO / "scripts" / "bootstrap-db.sh"
ROLES = REPO / "migrations" / "bootstrap" / "roles.sql"
ARN = "arn:aws:rds:eu-central-1:123456789012:cluster:app-cluster"
SECRET = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:rds!cluster-abc"

FAKE_AWS = r'''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
state = json.load(open(os.environ["FAKE_AWS_STATE"]))
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
def opt(name):
    return args[args.index(name) + 1] if name in args else None
if args[:2] == ["rds", "describe-db-clusters"]:
    print("\t".join([state["arn"], state["secret"], state["http"], state["iam"], "aurora-postgresql"]))
elif args[:2] == ["rds-data", "execute-statement"]:
    if state.get("resuming", 0) > 0:
        state["resuming"] -= 1
        json.dump(state, open(os.environ["FAKE_AWS_STATE"], "w"))
        print("An error occurred (DatabaseResumingException): The database is resuming", file=sys.stderr)
        sys.exit(254)
    sql = opt("--sql")
    if "pg_database" in sql:
        print("1" if state["exists"] else "0")
    else:
        print("{}")
else:
    print("unexpected: " + " ".join(args), file=sys.stderr)
    sys.exit(2)
'''


def roles_statements() -> list[str]:
    """roles.sql split the way the Data API needs it: comments dropped, $$ bodies kept whole."""
    out, stmt, body = [], "", False
    for line in ROLES.read_text(encoding="utf-8").splitlines():
        if not body and line.strip().startswith("--"):
            continue
        if not stmt and not line.strip():
            continue
        stmt += line + "\n"
        if line.count("$$") % 2 == 1:
            body = not body
        if not body and line.rstrip().endswith(";"):
            out.append(stmt)
            stmt = ""
    return out


def run(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None,
        **state) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "aws"
    fake.write_text(FAKE_AWS, encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps({"arn": ARN, "secret": SECRET, "http": "True", "iam": "True",
                                      "exists": False, **state}), encoding="utf-8")
    log = tmp_path / "calls.log"
    log.write_text("", encoding="utf-8")
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp_path), "FAKE_AWS_STATE": str(state_file),
           "FAKE_AWS_LOG": str(log), "AWS_REGION": "eu-central-1", "BOOTSTRAP_RETRY_SECS": "0", **(env_extra or {})}
    proc = subprocess.run(["bash", str(SCRIPT), "--cluster", "app-cluster", "--db-name", "app", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return proc, calls


def statements(calls: list[list[str]]) -> list[tuple[str, str]]:
    out = []
    for c in calls:
        if c[:2] == ["rds-data", "execute-statement"]:
            assert c[c.index("--resource-arn") + 1] == ARN and c[c.index("--secret-arn") + 1] == SECRET
            out.append((c[c.index("--database") + 1], c[c.index("--sql") + 1]))
    return out


pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def test_fresh_cluster(tmp_path: Path):
    proc, calls = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    sent = statements(calls)
    assert sent[0][0] == "postgres" and "pg_database" in sent[0][1]
    assert sent[1] == ("postgres", "CREATE DATABASE app")
    roles = roles_statements()
    assert len(roles) >= 5
    assert sent[2:-2] == [("app", s) for s in roles], "roles.sql, one statement per call, in order, in the new database"
    assert sent[-2] == ("app", "ALTER ROLE app_runtime SET idle_session_timeout = '600s'"), \
        "after roles.sql (which may set a default of its own): the configured value, 600 s by default"
    assert sent[-1] == ("app", "GRANT rds_iam TO app_owner, app_runtime")
    assert all("--region" in c and c[c.index("--region") + 1] == "eu-central-1" for c in calls)
    assert SECRET not in proc.stdout + proc.stderr


def test_second_run_keeps_the_database(tmp_path: Path):
    proc, calls = run(tmp_path, exists=True)
    assert proc.returncode == 0, proc.stderr
    assert not any("CREATE DATABASE" in sql for _, sql in statements(calls))
    assert statements(calls)[-1] == ("app", "GRANT rds_iam TO app_owner, app_runtime")


def test_waits_for_a_paused_cluster(tmp_path: Path):
    proc, calls = run(tmp_path, resuming=2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("resuming") == 2


@pytest.mark.parametrize(("state", "fix"), [
    ({"http": "False"}, f"aws rds enable-http-endpoint --resource-arn {ARN}"),
    ({"secret": "None"}, "--manage-master-user-password"),
])
def test_says_how_to_fix_a_cluster_it_cannot_use(tmp_path: Path, state: dict, fix: str):
    proc, calls = run(tmp_path, **state)
    assert proc.returncode != 0
    assert fix in proc.stderr
    assert not statements(calls), "nothing is sent before the cluster is usable"


def test_a_created_cluster_without_the_data_api_names_the_variable(tmp_path: Path):
    """terraform apply passes what turns a created cluster's Data API on (cluster_data_api): the
    CLI command would be undone by the next apply."""
    fix = "set cluster_data_api = true (terraform.tfvars) and apply again"
    proc, calls = run(tmp_path, http="False", env_extra={"BOOTSTRAP_DATA_API_FIX": fix})
    assert proc.returncode != 0
    assert "Data API (HTTP endpoint) is not enabled" in proc.stderr and fix in proc.stderr
    assert "enable-http-endpoint" not in proc.stderr
    assert not statements(calls)
    text = (REPO / "terraform" / "migrate.tf").read_text(encoding="utf-8")
    assert re.search(r'BOOTSTRAP_DATA_API_FIX\s*=\s*local\.create_cluster \? "set cluster_data_api = true', text)


IDLE = "ALTER ROLE app_runtime SET idle_session_timeout = '{}s'"


@pytest.mark.parametrize(("args", "env", "seconds"), [
    ((), {"BOOTSTRAP_IDLE_SESSION_TIMEOUT_SECS": "300"}, 300),  # how terraform apply passes it
    (("--idle-session-timeout", "86400"), {}, 86400),
    (("--idle-session-timeout", "0"), {"BOOTSTRAP_IDLE_SESSION_TIMEOUT_SECS": "300"}, 0),  # the flag wins; 0 disables
    (("--idle-session-timeout", "30"), {}, 30),
])
def test_sets_the_configured_idle_session_timeout(tmp_path: Path, args: tuple, env: dict, seconds: int):
    proc, calls = run(tmp_path, *args, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    sent = statements(calls)
    assert [sql for _, sql in sent if "idle_session_timeout" in sql][-1] == IDLE.format(seconds)
    assert sent[-2] == ("app", IDLE.format(seconds))


@pytest.mark.parametrize("value", ["29", "86401", "10m", "-1", "600s", "1e3", "060", "600; DROP ROLE app_owner"])
def test_refuses_a_bad_idle_session_timeout(tmp_path: Path, value: str):
    proc, calls = run(tmp_path, "--idle-session-timeout", value)
    assert proc.returncode != 0
    assert "--idle-session-timeout" in proc.stderr
    assert not statements(calls), "nothing is sent with a bad setting"


def test_terraform_passes_the_idle_session_timeout():
    """migrate.tf runs the script with the configured value, and again when it changes."""
    text = (REPO / "terraform" / "migrate.tf").read_text(encoding="utf-8")
    assert re.search(r"BOOTSTRAP_IDLE_SESSION_TIMEOUT_SECS\s*=\s*tostring\(var\.db_idle_session_timeout_seconds\)", text)
    assert re.search(r"triggers_replace\s*=\s*\[[^\]]*var\.db_idle_session_timeout_seconds", text)
