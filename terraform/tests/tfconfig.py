"""Load a Terraform directory with python-hcl2 into something tests can query.

The directory comes from the TF_DIR environment variable (the mutation tests
point it at an edited copy), defaulting to the directory above this file.
Expressions come back as strings such as "${var.timeout}"; the helpers below
search those strings rather than evaluate them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import hcl2
from hcl2.utils import SerializationOptions

OPTIONS = SerializationOptions(
    strip_string_quotes=True,
    explicit_blocks=False,
    with_comments=False,
    preserve_heredocs=False,
)


def tf_dir() -> Path:
    env = os.environ.get("TF_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


@dataclass
class TfConfig:
    root: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    variable_files: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    providers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    # -- lookups -----------------------------------------------------------

    def resource(self, rtype: str, name: str | None = None) -> dict[str, Any]:
        """The one resource of a type (or the named one); fails the test otherwise."""
        found = self.resources.get(rtype, {})
        if name is not None:
            assert name in found, f"resource {rtype}.{name} not found (have: {sorted(found)})"
            return found[name]
        assert len(found) == 1, f"expected exactly one {rtype}, found {sorted(found)}"
        return next(iter(found.values()))

    def resources_of(self, rtype: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(rtype, {})

    def resolve(self, text: str, depth: int = 5) -> str:
        """Inline `local.NAME` references (textually), so a search sees through them."""
        for _ in range(depth):
            whole = re.fullmatch(r"\$\{\s*local\.([A-Za-z_][A-Za-z0-9_]*)\s*\}", text)
            if whole and whole.group(1) in self.locals:
                text = text_of(self.locals[whole.group(1)])
                continue
            changed = False

            def sub(m: re.Match[str]) -> str:
                nonlocal changed
                name = m.group(1)
                if name in self.locals:
                    changed = True
                    value = self.locals[name]
                    return value if isinstance(value, str) else json.dumps(value)
                return m.group(0)

            text = re.sub(r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)", sub, text)
            if not changed:
                break
        return text


def text_of(value: Any) -> str:
    """A searchable rendering of any parsed value."""
    return value if isinstance(value, str) else json.dumps(value)


def unwrap(expr: Any) -> Any:
    """"${var.x}" -> "var.x"; anything else is returned unchanged."""
    if isinstance(expr, str):
        m = re.fullmatch(r"\$\{(.*)\}", expr, re.S)
        if m and "${" not in m.group(1):
            return m.group(1).strip()
    return expr


def walk(value: Any) -> Iterator[Any]:
    """Every dict and list inside a parsed value, depth first, itself included."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Nested blocks called `name` of a body (static and `dynamic` ones)."""
    out: list[dict[str, Any]] = []
    for b in body.get(name, []) or []:
        if isinstance(b, dict):
            out.append(b)
    for d in body.get("dynamic", []) or []:
        if isinstance(d, dict) and name in d:
            for c in d[name].get("content", []) or []:
                out.append(c)
    return out


def preconditions(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lc in body.get("lifecycle", []) or []:
        out.extend(lc.get("precondition", []) or [])
    return out


def load(root: Path | None = None) -> TfConfig:
    root = root or tf_dir()
    cfg = TfConfig(root=root)
    paths = sorted(root.glob("*.tf"))
    assert paths, f"no .tf files in {root}"
    for path in paths:
        text = path.read_text(encoding="utf-8")
        cfg.raw[path.name] = text
        with path.open(encoding="utf-8") as fh:
            parsed = hcl2.load(fh, serialization_options=OPTIONS)
        cfg.files[path.name] = parsed
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    assert name not in cfg.resources.get(rtype, {}), f"duplicate resource {rtype}.{name}"
                    cfg.resources.setdefault(rtype, {})[name] = body
        for block in parsed.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    cfg.data.setdefault(dtype, {})[name] = body
        for block in parsed.get("variable", []):
            for name, body in block.items():
                assert name not in cfg.variables, f"variable {name} declared twice"
                cfg.variables[name] = body
                cfg.variable_files[name] = path.name
        for block in parsed.get("output", []):
            for name, body in block.items():
                cfg.outputs[name] = body
        for block in parsed.get("locals", []):
            for name, value in block.items():
                assert name not in cfg.locals, f"local {name} declared twice"
                cfg.locals[name] = value
        for block in parsed.get("check", []):
            for name, body in block.items():
                cfg.checks[name] = body
        cfg.terraform.extend(parsed.get("terraform", []))
        for block in parsed.get("provider", []):
            for pname, body in block.items():
                cfg.providers.setdefault(pname, []).append(body)
    return cfg


# -- helpers shared by the structure tests ------------------------------------


def var_default(cfg: TfConfig, name: str) -> Any:
    assert name in cfg.variables, f"variable {name} is not declared"
    assert "default" in cfg.variables[name], f"variable {name} has no default"
    return cfg.variables[name]["default"]


def validation_text(cfg: TfConfig, name: str) -> str:
    vals = cfg.variables[name].get("validation", [])
    assert vals, f"variable {name} has no validation block"
    return " ".join(text_of(v.get("condition")) for v in vals)


def refs_resource(expr: str, rtype: str, cfg: TfConfig) -> str | None:
    """Name of the declared `rtype` resource that expr references, if any."""
    for name in cfg.resources_of(rtype):
        if re.search(rf"\b{re.escape(rtype)}\.{re.escape(name)}\b", expr):
            return name
    return None


def statements_with_action(cfg: TfConfig, action: str, doc: str | None = None) -> list[dict[str, Any]]:
    """Statements (static or dynamic content) of the policy documents that grant `action`."""
    found = []
    for name, body in cfg.data.get("aws_iam_policy_document", {}).items():
        if doc is not None and name != doc:
            continue
        for node in walk(body):
            if isinstance(node, dict) and action in (node.get("actions") or []):
                found.append(node)
    return found
