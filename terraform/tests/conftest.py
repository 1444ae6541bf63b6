"""Fixtures shared by the structure tests (test_structure*.py) and the evaluation tests
(test_evaluate*.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tfconfig import TfConfig, load


@pytest.fixture(scope="module")
def cfg() -> TfConfig:
    return load()


@pytest.fixture(scope="module")
def fn(cfg: TfConfig) -> dict:
    """The API function."""
    return cfg.resource("aws_lambda_function", "this")


@pytest.fixture(scope="module")
def migrate_fn(cfg: TfConfig) -> dict:
    """The migration function."""
    return cfg.resource("aws_lambda_function", "migrate")


@pytest.fixture(scope="session")
def tf(tmp_path_factory):
    """A `terraform console` over the variables and locals: one `terraform init` serves every
    evaluation test."""
    from test_evaluate import TERRAFORM, Console, _env

    if TERRAFORM is None:
        pytest.skip("terraform is not installed")
    root = load().root
    work = tmp_path_factory.mktemp("tf-eval")
    for path in [*sorted(root.glob("variables*.tf")), root / "locals.tf"]:
        shutil.copy(path, work / path.name)
    proc = subprocess.run([TERRAFORM, "init", "-backend=false", "-input=false", "-no-color"],
                          capture_output=True, text=True, cwd=work, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Console(work)
