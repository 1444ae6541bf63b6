"""Fixtures shared by the structure tests (test_structure*.py)."""

from __future__ import annotations

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
