"""The structure tests must be able to fail.

Each case copies the Terraform directory, breaks one thing a deployment needs,
runs test_structure.py against the copy (TF_DIR) in a fresh pytest process and
expects it to FAIL. An unmodified copy must pass, so a failure is the edit's
doing and not the copy's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tfconfig import tf_dir

HERE = Path(__file__).resolve().parent
STRUCTURE_TESTS = HERE / "test_structure.py"


def remove_block(text: str, header: str) -> str:
    """Delete the block whose first line matches `header` (a regex), braces balanced."""
    m = re.search(header, text, re.M)
    assert m, f"block {header!r} not found"
    depth = 0
    i = text.index("{", m.start())
    while True:
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    return text[: m.start()] + text[i + 1 :]


def sub(pattern: str, repl: str, flags: int = re.M) -> Callable[[str], str]:
    def edit(text: str) -> str:
        new, n = re.subn(pattern, repl, text, flags=flags)
        assert n >= 1, f"mutation pattern {pattern!r} matched nothing: the Terraform changed, update the mutation"
        return new

    return edit


def drop_block(header: str) -> Callable[[str], str]:
    return lambda text: remove_block(text, header)


# (id, file, edit)
MUTATIONS: list[tuple[str, str, Callable[[str], str]]] = [
    ("remove-default-route", "api_gateway.tf", drop_block(r'^resource "aws_apigatewayv2_route" "default"')),
    ("rds-connect-on-star", "iam.tf", sub(r"resources\s*=\s*\[local\.rds_dbuser_arn\]", 'resources = ["*"]')),
    ("rds-connect-any-cluster", "iam.tf", sub(r'\$\{coalesce\(var\.db_cluster_resource_id, "\*"\)\}', "*")),
    ("runtime-al2", "lambda.tf", sub(r'runtime\s*=\s*"provided\.al2023"', 'runtime = "provided.al2"')),
    ("handler-renamed", "lambda.tf", sub(r'handler\s*=\s*"bootstrap"', 'handler = "main"')),
    ("permission-without-source-arn", "api_gateway.tf", sub(r"^\s*source_arn\s*=.*\n", "")),
    ("permission-any-api", "api_gateway.tf", sub(r'source_arn\s*=\s*".*"', 'source_arn = "arn:aws:execute-api:*"')),
    ("variable-without-description", "variables.tf",
     sub(r'(variable "db_host" \{\n)\s*description\s*=.*\n', r"\1")),
    ("variable-without-type", "variables.tf", sub(r'(variable "db_port" \{\n(?:.*\n)*?)\s*type\s*=.*\n', r"\1")),
    ("undeclared-variable", "outputs.tf", sub(r"value\s*=\s*var\.db_port\b", "value = var.database_port")),
    ("no-timeout-margin", "lambda.tf",
     sub(r"var\.timeout >= var\.db_connect_timeout_secs \+ 5", "var.timeout >= var.db_connect_timeout_secs")),
    ("no-connection-budget", "lambda.tf",
     sub(r"var\.reserved_concurrent_executions <= var\.db_max_connections", "true")),
    ("payload-format-1", "api_gateway.tf", sub(r'payload_format_version\s*=\s*"2\.0"', 'payload_format_version = "1.0"')),
    ("integration-not-proxy", "api_gateway.tf", sub(r'integration_type\s*=\s*"AWS_PROXY"', 'integration_type = "AWS"')),
    ("stage-without-auto-deploy", "api_gateway.tf", sub(r"auto_deploy\s*=\s*true", "auto_deploy = false")),
    ("stage-without-access-log", "api_gateway.tf", drop_block(r"^\s*access_log_settings \{")),
    ("function-before-log-group", "lambda.tf", sub(r"^\s*aws_cloudwatch_log_group\.lambda,\n", "")),
    ("retention-7-days", "variables.tf",
     sub(r'(variable "log_retention_days" \{\n(?:.*\n)*?\s*default\s*=\s*)14', r"\g<1>7")),
    ("x86-by-default", "variables.tf",
     sub(r'(variable "architecture" \{\n(?:.*\n)*?\s*default\s*=\s*)"arm64"', r'\1"x86_64"')),
    ("env-without-db-host", "locals.tf", sub(r"^\s*DB_HOST\s*=.*\n", "")),
    ("env-pool-of-ten", "locals.tf", sub(r'DB_POOL_MAX\s*=\s*"1"', 'DB_POOL_MAX = "10"')),
    ("no-wildcard-warning", "checks.tf", drop_block(r'^check "db_cluster_resource_id_scoped"')),
    ("output-missing", "outputs.tf", drop_block(r'^output "api_url"')),
    ("unjustified-checkov-skip", "lambda.tf", sub(r"(#checkov:skip=CKV_AWS_116):[^\n]*", r"\1")),
]


def run_structure_tests(directory: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_DIR=str(directory), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir", str(HERE),
         str(STRUCTURE_TESTS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=300,
    )


def copy_config(dest: Path) -> Path:
    src = tf_dir()
    target = dest / "terraform"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("tests", ".terraform", "*.tfstate*", "__pycache__"))
    return target


def test_unmodified_copy_passes(tmp_path: Path):
    proc = run_structure_tests(copy_config(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize(("fname", "edit"), [(f, e) for _, f, e in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught(tmp_path: Path, fname: str, edit: Callable[[str], str]):
    target = copy_config(tmp_path)
    path = target / fname
    original = path.read_text(encoding="utf-8")
    mutated = edit(original)
    assert mutated != original
    path.write_text(mutated, encoding="utf-8")
    proc = run_structure_tests(target)
    # 1 = tests ran and failed. Anything else (2 interrupted, 4 usage, 5 no tests)
    # would mean the suite broke instead of catching the mutation.
    assert proc.returncode == 1, f"mutation not caught (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    assert re.search(r"\b1 failed\b", proc.stdout), proc.stdout[-3000:]
