"""Variables, outputs and hygiene, asserted on the parsed HCL."""

from __future__ import annotations

import json
import re

from tfconfig import TfConfig, text_of

# What scripts/psql.sh, scripts/migrate.sh, scripts/bootstrap-db.sh and the deploy guide read.
REQUIRED_OUTPUTS = [
    "api_url",
    "api_id",
    "lambda_function_name",
    "lambda_function_arn",
    "lambda_iam_role_arn",
    "lambda_log_group_name",
    "api_access_log_group_name",
    "db_host",
    "db_port",
    "db_name",
    "db_user",
    "aws_region",
    "db_cluster_identifier",
    "db_cluster_resource_id",
    "migrate_function_name",
    "migrations",
    "db_connection_budget",
    "db_engine",
    "db_auth",
    "dsql_cluster_arn",
    "dsql_cluster_identifier",
]


# ---------------------------------------------------------------------------
# Variables, outputs, hygiene
# ---------------------------------------------------------------------------


def _all_text(cfg: TfConfig) -> str:
    return "\n".join(json.dumps(parsed) for parsed in cfg.files.values())


def test_every_referenced_variable_is_declared(cfg: TfConfig):
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", _all_text(cfg)))
    missing = sorted(used - set(cfg.variables))
    assert not missing, f"referenced but not declared in variables.tf: {missing}"


def test_every_declared_variable_is_used(cfg: TfConfig):
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", _all_text(cfg)))
    unused = sorted(set(cfg.variables) - used)
    assert not unused, f"declared but never used: {unused}"


def test_variables_live_in_variables_files(cfg: TfConfig):
    for fname, parsed in cfg.files.items():
        if not re.fullmatch(r"variables(_[a-z]+)?\.tf", fname):
            assert not parsed.get("variable"), f"{fname} declares variables; keep them in variables*.tf"


def test_validations_reference_only_their_own_variable(cfg: TfConfig):
    # Cross-variable validation needs Terraform 1.9; required_version is 1.5.
    for name, body in cfg.variables.items():
        for v in body.get("validation", []):
            refs = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", text_of(v.get("condition"))))
            assert refs == {name}, f"validation of {name} references {sorted(refs)}; use a precondition instead"
            assert not re.search(r"\b(local|data|aws_[a-z0-9_]+)\.", text_of(v.get("condition"))), name


def test_every_variable_has_description_and_type(cfg: TfConfig):
    for name, body in cfg.variables.items():
        assert isinstance(body.get("description"), str) and len(body["description"].strip()) >= 10, \
            f"variable {name} needs a description"
        assert body.get("type"), f"variable {name} needs a type"


def test_required_outputs_exist_with_descriptions(cfg: TfConfig):
    for name in REQUIRED_OUTPUTS:
        assert name in cfg.outputs, f"output {name} missing"
        assert cfg.outputs[name].get("description"), f"output {name} needs a description"
        assert cfg.outputs[name].get("value") is not None


def test_checkov_skips_carry_reasons(cfg: TfConfig):
    skips = [(f, m) for f, raw in cfg.raw.items() for m in re.finditer(r"checkov:skip=([^\s:]+)(?::(.*))?", raw)]
    for fname, m in skips:
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", m.group(1)), f"{fname}: malformed skip {m.group(0)}"
        reason = (m.group(2) or "").strip()
        assert len(reason) >= 20, f"{fname}: skip of {m.group(1)} needs a real reason"


def test_tfvars_example_names_declared_variables(cfg: TfConfig):
    path = cfg.root / "terraform.tfvars.example"
    assert path.exists(), "terraform.tfvars.example missing"
    text = path.read_text(encoding="utf-8")
    active = set(re.findall(r"^([a-z_][a-z0-9_]*)\s*=", text, re.M))
    mentioned = active | set(re.findall(r"^#\s?([a-z_][a-z0-9_]*)\s+=", text, re.M))
    assert not sorted(mentioned - set(cfg.variables)), f"example sets undeclared variables: {sorted(mentioned - set(cfg.variables))}"
    required = {n for n, b in cfg.variables.items() if "default" not in b}
    assert required <= active, f"required variables missing from the example: {sorted(required - active)}"
