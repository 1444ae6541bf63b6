"""The configuration against the AWS provider's schema (schema_check.py), and proof that the check can fail.

The schemas come from the cache that scripts/check-terraform.sh fills
(TF_SCHEMA_CACHE, default ~/.cache/tenant-api/aws-provider-schema). Each
mutation copies terraform/, breaks one thing `terraform validate` would
catch, and expects the check to name it, at the provider versions that the
(possibly mutated) constraint selects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest

import schema_check
from provider_schema import DEFAULT_CACHE, MANIFEST
from provider_schema import load as load_schema
from tfconfig import tf_dir

CACHE = Path(os.environ.get("TF_SCHEMA_CACHE") or DEFAULT_CACHE)
KNOWN = json.loads(MANIFEST.read_text(encoding="utf-8"))["versions"]


@pytest.fixture(scope="module", autouse=True)
def schemas_present():
    missing = [v for v in KNOWN if not schema_check.schema_path(CACHE, v).exists()]
    assert not missing, (f"provider schemas {missing} are not in {CACHE}: "
                         "run scripts/check-terraform.sh (or python terraform/tests/provider_schema.py fetch)")


def test_constraint_ends_are_checked():
    files = schema_check.parse_dir(tf_dir())
    constraint = schema_check.aws_constraint(files)
    versions, problems = schema_check.ends(constraint, list(KNOWN))
    assert not problems, problems
    floor = schema_check.floor_of(constraint)
    assert versions[0] == floor, f"the floor {floor} itself must be checked, not only {versions}"
    assert len(versions) == 2, f"check two ends of {constraint!r}, got {versions}"
    assert versions[-1].split(".")[0] == floor.split(".")[0] == "6", versions


@pytest.mark.parametrize("version", sorted(v for v in KNOWN if schema_check.satisfies(
    v, schema_check.aws_constraint(schema_check.parse_dir(tf_dir())))), ids=str)
def test_configuration_matches_the_schema(version: str):
    problems = schema_check.run(tf_dir(), CACHE, [version])[version]
    assert problems == [], "\n".join(problems)


def test_extracted_schemas_know_the_provider():
    """Facts of hashicorp/aws that the extraction must get right, in every extracted version."""
    for version in KNOWN:
        s = load_schema(schema_check.schema_path(CACHE, version))
        assert s["provider_version"] == version
        fn = s["resources"]["aws_lambda_function"]
        assert fn["attributes"]["role"]["mode"] == "required"
        assert fn["attributes"]["function_name"]["mode"] == "required"
        assert fn["attributes"]["arn"]["mode"] == "computed" and fn["attributes"]["invoke_arn"]["mode"] == "computed"
        assert fn["attributes"]["memory_size"]["mode"] == "optional"
        vpc = fn["blocks"]["vpc_config"]
        assert (vpc["nesting"], vpc["min_items"], vpc["max_items"]) == ("single", 0, 1)
        assert vpc["block"]["attributes"]["vpc_id"]["mode"] == "computed"
        assert fn["blocks"]["environment"]["block"]["attributes"]["variables"]["type"] == "map(string)"
        doc = s["data_sources"]["aws_iam_policy_document"]
        st = doc["blocks"]["statement"]
        assert (st["nesting"], st["min_items"], st["max_items"]) == ("list", 0, None)
        assert st["block"]["blocks"]["principals"]["block"]["attributes"]["identifiers"]["mode"] == "required"
        assert doc["attributes"]["json"]["mode"] == "computed"
        listener = s["resources"]["aws_lb_listener"]["blocks"]["default_action"]
        assert listener["min_items"] == 1, "a required block"
        assert s["resources"]["aws_security_group"]["attributes"]["ingress"]["type"] == "list(object)"
        assert s["resources"]["aws_instance"]["attributes"]["get_password_data"]["mode"] == "optional", \
            "renamed by cdktf (fetchPasswordData): the name comes from the docs anchor"
        region = s["data_sources"]["aws_region"]["attributes"]
        assert ("region" in region) == version.startswith("6."), "aws_region.region arrived in 6.0"
        assert s["provider"]["attributes"]["region"]["mode"] == "optional"
        # Aurora DSQL (dsql.tf): what the configuration sets and reads.
        dsql = s["resources"]["aws_dsql_cluster"]["attributes"]
        assert dsql["deletion_protection_enabled"] == {"mode": "optional", "type": "bool"}
        assert dsql["kms_encryption_key"]["mode"] == "optional" and dsql["tags"]["mode"] == "optional"
        assert dsql["arn"]["mode"] == "computed" and dsql["identifier"]["mode"] == "computed"
        assert "endpoint" not in dsql, "no endpoint attribute: dsql.tf derives <id>.dsql.<region>.on.aws"


def test_constraint_helpers():
    assert schema_check.satisfies("6.25.0", ">= 6.25, < 7.0")
    assert not schema_check.satisfies("7.0.0", ">= 6.25, < 7.0")
    assert not schema_check.satisfies("5.100.0", ">= 6.25, < 7.0")
    assert schema_check.satisfies("6.66.0", "~> 6.25")
    assert not schema_check.satisfies("7.1.0", "~> 6.25")
    assert schema_check.floor_of(">= 6.25, < 7.0") == "6.25.0"
    versions, problems = schema_check.ends(">= 6.0, < 7.0", list(KNOWN))
    assert problems and "6.0.0" in problems[0], "a floor without a schema must be reported"


def _check_text(tmp_path: Path, hcl: str, version: str = "6.25.0") -> list[str]:
    (tmp_path / "main.tf").write_text(hcl, encoding="utf-8")
    return schema_check.run(tmp_path, CACHE, [version])[version]


def test_attributes_as_blocks_and_escapes(tmp_path: Path):
    """Terraform accepts the SDK's list-of-object attributes written as blocks (static or
    dynamic); `$${...}` is a literal, not a reference; meta-arguments are allowed."""
    problems = _check_text(tmp_path, """
resource "aws_security_group" "web" {
  count       = 1
  name        = "web"
  description = "literal $${aws_nothing.here.at_all}"
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["10.0.0.0/8"]
  }
  dynamic "egress" {
    for_each = [1]
    content {
      from_port = 0
    }
  }
  tags = {}
  lifecycle {
    create_before_destroy = true
  }
}
""")
    assert problems == [], problems


def test_nested_blocks_and_required_ones_inside(tmp_path: Path):
    problems = _check_text(tmp_path, """
resource "aws_lambda_function" "f" {
  function_name = "f"
  role          = "arn:aws:iam::123456789012:role/x"
  tags          = {}
  vpc_config {
    subnet_ids = []
  }
  dead_letter_config {}
}
""")
    assert any("vpc_config: the required argument `security_group_ids` is missing" in p for p in problems), problems
    assert any("dead_letter_config: the required argument `target_arn` is missing" in p for p in problems), problems


# ---------------------------------------------------------------------------
# Mutations: each must be reported
# ---------------------------------------------------------------------------


def sub(pattern: str, repl: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
        assert n == 1, f"mutation pattern {pattern!r} matched nothing: the Terraform changed, update the mutation"
        return new

    return edit


# (id, file, edit, what the report must say)
MUTATIONS: list[tuple[str, str, Callable[[str], str], str]] = [
    ("misspelt-argument", "lambda.tf",
     sub(r"^(\s*)memory_size(\s*)=", r"\1memory_sise\2="), r"unsupported argument or block `memory_sise`"),
    ("misspelt-reference", "api_gateway.tf",
     sub(r"aws_lambda_function\.this\.invoke_arn", "aws_lambda_function.this.invoke_url"),
     r"aws_lambda_function has no attribute `invoke_url`"),
    ("missing-required-argument", "lambda.tf",
     sub(r"^(resource \"aws_lambda_function\" \"this\" \{(?:\n.*?)*?)\n\s*role\s*=.*", r"\1"),
     r"aws_lambda_function\.this: the required argument `role` is missing"),
    ("argument-written-as-block", "lambda.tf",
     sub(r"variables\s*=\s*merge\(local\.db_connection_env, local\.lambda_environment\)",
         "variables {\n      DB_HOST = local.db_host\n    }"),
     r"`variables` is an argument, written as a block"),
    ("block-written-as-argument", "lambda.tf",
     sub(r"tracing_config \{", "tracing_config = {"), r"`tracing_config` is a block, written as an argument"),
    ("single-block-twice", "lambda.tf",
     sub(r"^(\s*)tracing_config \{", r"\1tracing_config {\n\1  mode = var.tracing_mode\n\1}\n\1tracing_config {"),
     r"block `tracing_config` may appear at most once"),
    ("unknown-resource-type", "api_gateway.tf",
     sub(r'^resource "aws_lambda_permission"', 'resource "aws_lambda_permissions"'),
     r"no resource type aws_lambda_permissions"),
    ("computed-attribute-set", "lambda.tf",
     sub(r"^(\s*)handler(\s*)=(.*)$", r"\1handler\2=\3\n\1invoke_arn = \"x\""),
     r"`invoke_arn` is computed by the provider"),
    ("dynamic-block-misspelt", "lambda.tf",
     sub(r'dynamic "vpc_config"', 'dynamic "vpc_configuration"'), r'dynamic "vpc_configuration": no block'),
    ("undeclared-resource", "outputs.tf",
     sub(r"aws_lambda_function\.this\.arn", "aws_lambda_function.main.arn"), r"which is not declared"),
    ("untagged-resource", "lambda.tf",
     sub(r"^  tags = local\.tags\n", ""), r"aws_lambda_function\.this: taggable, but sets no `tags`"),
    ("old-5x-floor", "versions.tf",
     sub(r'version\s*=\s*">= 6\.25, < 7\.0"', 'version = ">= 5.100, < 7.0"'),
     r"`data\.aws_region\.current\.region`: aws_region has no attribute `region` in hashicorp/aws 5\.100\.0"),
    ("floor-without-schema", "versions.tf",
     sub(r'version\s*=\s*">= 6\.25, < 7\.0"', 'version = ">= 6.0, < 7.0"'), r"no schema of 6\.0\.0 is known"),
    # Aurora DSQL
    ("dsql-endpoint-attribute", "dsql.tf",
     sub(r"aws_dsql_cluster\.this\[0\]\.identifier", "aws_dsql_cluster.this[0].endpoint"),
     r"aws_dsql_cluster has no attribute `endpoint`"),
    ("dsql-argument-misspelt", "dsql.tf",
     sub(r"deletion_protection_enabled =", "deletion_protection ="), r"unsupported argument or block `deletion_protection`"),
    ("dsql-computed-identifier-set", "dsql.tf",
     sub(r"^(\s*)kms_encryption_key = ", r'\1identifier = "tenant-api"\n\1kms_encryption_key = '),
     r"`identifier` is computed by the provider"),
    ("dsql-untagged", "dsql.tf",
     sub(r"^  tags = merge\(local\.tags, \{ Name = var\.name \}\)\n", ""), r"aws_dsql_cluster\.this: taggable, but sets no `tags`"),
    ("dsql-multi-region-as-argument", "dsql.tf",
     sub(r"^(\s*)kms_encryption_key = ", r"\1multi_region_properties = {}\n\1kms_encryption_key = "),
     r"`multi_region_properties` is a block, written as an argument"),
]


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "terraform"
    shutil.copytree(tf_dir(), target, ignore=shutil.ignore_patterns("tests", ".terraform", "*.tfstate*"))
    return target


def _report(directory: Path) -> list[str]:
    return [f"{v}: {p}" for v, ps in schema_check.run(directory, CACHE).items() for p in ps]


def test_unmodified_copy_is_clean(tmp_path: Path):
    assert _report(_copy(tmp_path)) == []


@pytest.mark.parametrize(("fname", "edit", "expected"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_is_reported(tmp_path: Path, fname: str, edit: Callable[[str], str], expected: str):
    target = _copy(tmp_path)
    path = target / fname
    original = path.read_text(encoding="utf-8")
    mutated = edit(original)
    assert mutated != original
    path.write_text(mutated, encoding="utf-8")
    report = _report(target)
    assert any(re.search(expected, line) for line in report), \
        f"expected a problem matching {expected!r}, got:\n" + "\n".join(report)
