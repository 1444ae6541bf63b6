"""Check a Terraform directory against the AWS provider's schema, offline.

What `terraform validate` would say about the provider's side, for each
provider version at both ends of the `hashicorp/aws` version constraint in
versions.tf (schemas extracted by provider_schema.py):

  * every resource and data source type exists;
  * every argument and block (static and `dynamic`) exists, and is written as
    an argument (`x = ...`) or as a block (`x { ... }`) as the schema says;
    computed-only attributes are not set;
  * a block of at most one element appears at most once;
  * required arguments and blocks are present (a `dynamic` block counts);
  * every `aws_x.name.attr` / `data.aws_x.name.attr` reference names a
    declared resource and an attribute (or block) that type exports.

Meta-arguments (count, for_each, depends_on, lifecycle, provider,
provisioner, connection) are Terraform's, not the provider's, and allowed.
An attribute of type list (or set) of objects may be written as blocks,
static or `dynamic`: Terraform allows that for the SDK's "attributes as
blocks" (aws_security_group's `ingress`, aws_route_table's `route`); the
cdktf packages do not say which such attributes come from the plugin
framework, where it is an error, so their content is not checked either way.

One convention of ours rides along, since it needs the schema: every
resource whose type has a settable `tags` argument sets it.

Command line:
    python schema_check.py [--schema-dir DIR] [TF_DIR]
prints the problems per version and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import hcl2
from hcl2.utils import SerializationOptions

from provider_schema import DEFAULT_CACHE, MANIFEST
from provider_schema import load as load_schema

HERE = Path(__file__).resolve().parent

OPTIONS = SerializationOptions(
    strip_string_quotes=True,
    explicit_blocks=True,  # blocks carry __is_block__: `x { }` and `x = [{ }]` differ
    with_comments=False,
    preserve_heredocs=False,
)
IS_BLOCK = "__is_block__"
META_RESOURCE = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
META_DATA = {"count", "for_each", "depends_on", "lifecycle", "provider"}
META_PROVIDER = {"alias", "version"}

_REF = re.compile(
    r"(?<![\w.\-])(?P<data>data\.)?(?P<type>aws_[a-z0-9_]+)\.(?P<name>[A-Za-z_][\w-]*)"
    r"(?P<index>(?:\[[^\]]*\])*)(?:\.(?P<attr>[A-Za-z_]\w*))?"
)


# ---------------------------------------------------------------------------
# The configuration
# ---------------------------------------------------------------------------


@dataclass
class Declared:
    kind: str  # "resource" or "data"
    type: str
    name: str
    file: str
    body: dict[str, Any]


def parse_dir(tf_dir: Path) -> dict[str, dict[str, Any]]:
    parsed = {}
    for path in sorted(tf_dir.glob("*.tf")):
        with path.open(encoding="utf-8") as fh:
            parsed[path.name] = hcl2.load(fh, serialization_options=OPTIONS)
    if not parsed:
        raise SystemExit(f"no .tf files in {tf_dir}")
    return parsed


def declarations(files: dict[str, dict[str, Any]]) -> list[Declared]:
    out = []

    def add(kind: str, blocks: list[dict[str, Any]], fname: str) -> None:
        for block in blocks or []:
            for rtype, named in block.items():
                if rtype == IS_BLOCK:
                    continue
                for name, body in named.items():
                    if name != IS_BLOCK:
                        out.append(Declared(kind, rtype, name, fname, body))

    for fname, parsed in files.items():
        add("resource", parsed.get("resource", []), fname)
        add("data", parsed.get("data", []), fname)
        for check in parsed.get("check", []) or []:  # scoped data sources inside `check` blocks
            for name, body in check.items():
                if name != IS_BLOCK:
                    add("data", body.get("data", []), fname)
    return out


def aws_constraint(files: dict[str, dict[str, Any]]) -> str:
    for parsed in files.values():
        for tf in parsed.get("terraform", []) or []:
            for rp in tf.get("required_providers", []) or []:
                aws = rp.get("aws")
                if isinstance(aws, dict) and aws.get("version"):
                    return aws["version"]
    raise SystemExit("versions.tf: no version constraint for the aws provider")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def expressions(text: str) -> Iterator[str]:
    """The parts of a string inside ${ ... } (python-hcl2 writes every expression that way)."""
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        if depth == 0 and text.startswith("$${", i):  # an escaped, literal "${"
            i += 3
            continue
        if text.startswith("${", i):
            if depth == 0:
                start = i + 2
            depth += 1
            i += 2
            continue
        if text[i] == "{" and depth:
            depth += 1
        elif text[i] == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start:i]
        i += 1


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------


def vtuple(v: str) -> tuple[int, ...]:
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def satisfies(version: str, constraint: str) -> bool:
    v = vtuple(version)
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(>=|<=|>|<|=|!=|~>)?\s*([0-9][0-9.]*)\s*", part)
        if not m:
            raise SystemExit(f"cannot read the version constraint {constraint!r}")
        op, bound = m.group(1) or "=", m.group(2)
        b = vtuple(bound)
        if op == "~>":
            n = len(bound.split("."))
            upper = list(b[: n - 1])
            upper[-1] += 1
            ok = v >= b and v < tuple(upper + [0] * (3 - len(upper)))
        else:
            ok = {">=": v >= b, "<=": v <= b, ">": v > b, "<": v < b, "=": v == b, "!=": v != b}[op]
        if not ok:
            return False
    return True


def floor_of(constraint: str) -> str | None:
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(>=|~>|=)?\s*([0-9][0-9.]*)\s*", part)
        if m and (m.group(1) or "=") in (">=", "~>", "="):
            return ".".join(str(x) for x in vtuple(m.group(2)))
    return None


def manifest_versions() -> list[str]:
    return sorted(json.loads(MANIFEST.read_text(encoding="utf-8"))["versions"], key=vtuple)


def ends(constraint: str, available: list[str]) -> tuple[list[str], list[str]]:
    """(versions to check, problems): the constraint's floor, exactly, and the newest allowed version we have."""
    problems = []
    inside = [v for v in sorted(available, key=vtuple) if satisfies(v, constraint)]
    floor = floor_of(constraint)
    if floor is None:
        problems.append(f"the aws provider constraint {constraint!r} has no lower bound: say which version is the oldest supported")
    elif floor not in inside:
        problems.append(
            f"the aws provider constraint {constraint!r} allows {floor}, but no schema of {floor} is known "
            f"(provider_schemas.json has {', '.join(available)}): raise the floor to a checked version or add {floor}")
    if not inside:
        problems.append(f"no known provider schema satisfies {constraint!r}")
        return [], problems
    return sorted({inside[0], inside[-1]}, key=vtuple), problems


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get(IS_BLOCK) for v in value)


def check_body(body: dict[str, Any], schema: dict[str, Any], where: str, problems: list[str],
               meta: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    attributes = schema["attributes"]
    blocks = schema["blocks"]
    count: dict[str, int] = {}
    for key, value in body.items():
        if key == IS_BLOCK or key in meta:
            continue
        if key == "dynamic":
            for dyn in value if isinstance(value, list) else []:
                for name, spec in dyn.items():
                    if name == IS_BLOCK:
                        continue
                    if name in attributes:
                        if attributes[name]["type"] != "list(object)":
                            problems.append(f"{where}: `{name}` is an argument (`{name} = ...`), not a block: it cannot be `dynamic`")
                    elif name not in blocks:
                        problems.append(f"{where}: dynamic \"{name}\": no block `{name}` here")
                    else:
                        count[name] = count.get(name, 0) + 1
                        contents = spec.get("content", [])
                        if not _is_block(contents):
                            problems.append(f"{where}: dynamic \"{name}\" has no content block")
                        elif not blocks[name].get("opaque"):
                            for c in contents:
                                check_body(c, blocks[name]["block"], f"{where}.{name}", problems)
            continue
        if key in attributes:
            if _is_block(value):
                if attributes[key]["type"] != "list(object)":  # attributes as blocks: see above
                    problems.append(f"{where}: `{key}` is an argument, written as a block: write `{key} = ...`")
            elif attributes[key]["mode"] == "computed":
                problems.append(f"{where}: `{key}` is computed by the provider (read-only): it cannot be set")
        elif key in blocks:
            if not _is_block(value):
                problems.append(f"{where}: `{key}` is a block, written as an argument: write `{key} {{ ... }}`")
                continue
            count[key] = count.get(key, 0) + len(value)
            if not blocks[key].get("opaque"):
                for v in value:
                    check_body(v, blocks[key]["block"], f"{where}.{key}", problems)
        else:
            problems.append(f"{where}: unsupported argument or block `{key}`")
    for name, attr in attributes.items():
        if attr["mode"] == "required" and name not in body:
            problems.append(f"{where}: the required argument `{name}` is missing")
    for name, blk in blocks.items():
        n = count.get(name, 0)
        if blk["min_items"] >= 1 and n == 0:
            problems.append(f"{where}: the required block `{name}` is missing")
        if blk["max_items"] == 1 and n > 1:
            problems.append(f"{where}: block `{name}` may appear at most once, found {n}")


def check(files: dict[str, dict[str, Any]], schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    decls = declarations(files)
    declared = {(d.kind, d.type, d.name) for d in decls}
    for d in decls:
        table = schema["resources"] if d.kind == "resource" else schema["data_sources"]
        label = f"{d.file}: {'data.' if d.kind == 'data' else ''}{d.type}.{d.name}"
        if not d.type.startswith("aws_"):
            continue  # another provider's resource: not ours to check
        if d.type not in table:
            what = "resource" if d.kind == "resource" else "data source"
            problems.append(f"{label}: no {what} type {d.type} in hashicorp/aws {schema['provider_version']}")
            continue
        check_body(d.body, table[d.type], label, problems, META_RESOURCE if d.kind == "resource" else META_DATA)
        tags = table[d.type]["attributes"].get("tags")
        if d.kind == "resource" and tags and tags["mode"] != "computed" and "tags" not in d.body:
            problems.append(f"{label}: taggable, but sets no `tags` (tags = local.tags)")
    for fname, parsed in files.items():
        for provider in parsed.get("provider", []) or []:
            body = provider.get("aws")
            if isinstance(body, dict) and schema.get("provider"):
                check_body(body, schema["provider"], f'{fname}: provider "aws"', problems, META_PROVIDER)
        seen = set()
        for text in strings(parsed):
            for expr in expressions(text):
                for m in _REF.finditer(expr):
                    kind = "data" if m.group("data") else "resource"
                    rtype, name, attr = m.group("type"), m.group("name"), m.group("attr")
                    ref = m.group(0)
                    if ref in seen:
                        continue
                    seen.add(ref)
                    if (kind, rtype, name) not in declared:
                        problems.append(f"{fname}: `{ref}` refers to {'data.' if kind == 'data' else ''}{rtype}.{name}, which is not declared")
                        continue
                    if attr is None:
                        continue
                    table = schema["resources"] if kind == "resource" else schema["data_sources"]
                    entry = table.get(rtype)
                    if entry is not None and attr not in entry["attributes"] and attr not in entry["blocks"]:
                        problems.append(f"{fname}: `{ref}`: {rtype} has no attribute `{attr}` in hashicorp/aws {schema['provider_version']}")
    return problems


def schema_path(cache: Path, version: str) -> Path:
    return cache / f"{version}.json"


def run(tf_dir: Path, cache: Path, versions: list[str] | None = None) -> dict[str, list[str]]:
    """Problems per provider version ("constraint" for problems with the constraint itself)."""
    files = parse_dir(tf_dir)
    out: dict[str, list[str]] = {}
    if versions is None:
        versions, constraint_problems = ends(aws_constraint(files), manifest_versions())
        if constraint_problems:
            out["constraint"] = constraint_problems
    for version in versions:
        path = schema_path(cache, version)
        if not path.exists():
            raise SystemExit(f"{path} is missing: scripts/check-terraform.sh fetches it "
                             "(python terraform/tests/provider_schema.py fetch)")
        out[version] = check(files, load_schema(path))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tf_dir", nargs="?", type=Path, default=HERE.parent)
    parser.add_argument("--schema-dir", type=Path,
                        default=Path(os.environ.get("TF_SCHEMA_CACHE") or DEFAULT_CACHE))
    args = parser.parse_args(argv)
    constraint = aws_constraint(parse_dir(args.tf_dir))
    results = run(args.tf_dir, args.schema_dir)
    total = 0
    for version, problems in results.items():
        total += len(problems)
        title = "version constraint" if version == "constraint" else f"hashicorp/aws {version}"
        print(f"{title} ({constraint}): {len(problems)} problem(s)")
        for p in problems:
            print(f"  {p}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
