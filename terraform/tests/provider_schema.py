"""The AWS provider's schema, extracted offline from an npm package.

`terraform providers schema -json` needs the provider binary, which cannot be
downloaded here. The npm packages @cdktf/provider-aws and @cdktn/provider-aws
are generated from that very JSON, and their `.jsii` file (the jsii type
system of the package, ~130 MB of JSON) keeps what a configuration check
needs. How cdktf encodes the schema there:

  * one class per resource or data source, whose `base` is
    <cdktf|cdktn>.TerraformResource / TerraformDataSource /
    TerraformEphemeralResource / TerraformProvider; its docs summary links to
    the registry page, `.../hashicorp/aws/<version>/docs/<resources|data-sources>/<x> aws_<x>}`,
    which gives the Terraform type name and the provider version the package
    was generated from. The static `tfResourceType` constant has no value in
    the .jsii; the generated JavaScript sets it (`LambdaFunction.tfResourceType
    = "aws_lambda_function"`, the same name the class passes as
    `terraformResourceType` to its base), and the two must agree;
  * the class's initializer takes a `config` struct (a `datatype` interface)
    with one property per argument and per block. The Terraform name is the
    anchor of the property's "Docs at Terraform Registry" link (`#vpc_config`),
    which survives cdktf's renames (`self` -> selfAttribute, `get_user_data`
    -> fetchUserData, `address_line_1` -> addressLine1);
  * `optional` absent means required (for a block: at least one, min_items 1);
  * a block's docs summary is exactly "<name> block."; a block of at most one
    element (MaxItems 1, or a single nested block) is typed as the struct
    itself, any other block as `IResolvable | Struct[]`. A struct-typed
    property without "block." is an attribute of object type (a framework
    nested attribute, or an SDK attribute such as aws_default_security_group's
    `ingress`). A few deep blocks are flattened to a primitive by cdktf; they
    keep the "block." summary and are recorded as opaque blocks, and so is a
    block that cdktf made recursive (aws_wafv2_web_acl_rule's `statement`);
  * computed-only (exported, not settable) attributes are not in the config
    struct: they are the class's read-only properties that are neither an
    argument, nor an `...Input` getter, nor static. Inside blocks they live on
    the struct's `<Struct>OutputReference` class. Their Terraform names come
    from the generated JavaScript, whose getters read
    `this.getStringAttribute('snake_name')` (or build `new XList(this,
    "snake_name", ...)`); camelCase -> snake_case is only the fallback.

What the .jsii cannot say, and the schema JSON therefore leaves out: exact
min/max items other than "at least one" and "at most one", list versus set
nesting, and whether an optional argument is also computed.

Command line (used by scripts/check-terraform.sh):
    python provider_schema.py fetch [--cache DIR]
        every version in provider_schemas.json that is not in the cache yet:
        `npm pack` (registry only, nothing installed), integrity check, extract
    python provider_schema.py extract PACKAGE.tgz OUT.json --expect-version 6.25.0
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

FORMAT = 1

_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/aws/(?P<version>[0-9][0-9.]*)/docs/"
    r"(?P<kind>resources|data-sources|ephemeral-resources)/\S+ (?P<type>aws_[a-z0-9_]+)\}"
)
# "... {@link https://.../docs/resources/lambda_function#vpc_config LambdaFunction#vpc_config}"
_ANCHOR = re.compile(r"#([A-Za-z0-9_]+) [A-Za-z0-9]+#[A-Za-z0-9_]+\}")
_JS_CLASS = re.compile(rb"^(?:export )?class (\w+) extends ", re.M)
_JS_GETTER = re.compile(rb"get (\w+)\(\) \{\s*return this\.get\w*Attribute\('([^']+)'\)")
# cdktf (ES2018): `this._x = new XList(this, "x", false)` in the constructor, and
# `LambdaFunction.tfResourceType = "..."` after the class; cdktn (ES2022): class
# fields `_x = new XList(this, "x", false)` and `static tfResourceType = "..."`.
_JS_COMPLEX = re.compile(rb"(?:this\.|^\s*)_(\w+) = new \w+\(this, \"([^\"]+)\"", re.M)
_JS_TYPE = re.compile(rb"^(\w+)\.tfResourceType = \"([a-z0-9_]+)\";", re.M)
_JS_STATIC_TYPE = re.compile(rb"static tfResourceType = \"([a-z0-9_]+)\";")

_KINDS = {
    "TerraformResource": "resources",
    "TerraformDataSource": "data_sources",
    "TerraformEphemeralResource": "ephemeral_resources",
}


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


class _Extractor:
    def __init__(self, jsii: dict[str, Any], js_names: dict[str, dict[str, str]], js_types: dict[str, str]):
        self.js_types = js_types
        self.types: dict[str, Any] = jsii["types"]
        self.assembly: str = jsii["name"]
        self.js_names = js_names
        self.memo: dict[str, dict[str, Any]] = {}
        self.open: set[str] = set()  # structs being built: a struct inside itself is a cycle

    # -- types -------------------------------------------------------------

    def _local(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        fqn = ref.get("fqn")
        if fqn and fqn.startswith(self.assembly + "."):
            return self.types.get(fqn)
        return None

    def _is_struct(self, ref: dict[str, Any]) -> bool:
        t = self._local(ref)
        return bool(t and t.get("datatype"))

    def _shape(self, ref: dict[str, Any]) -> tuple[str, str | None]:
        """("single", fqn) for a struct, ("list", fqn) for a struct array, ("value", None) otherwise."""
        if self._is_struct(ref):
            return "single", ref["fqn"]
        if "union" in ref:
            for member in ref["union"]["types"]:
                coll = member.get("collection")
                if coll and coll["kind"] == "array" and self._is_struct(coll["elementtype"]):
                    return "list", coll["elementtype"]["fqn"]
        return "value", None

    def _type_name(self, ref: dict[str, Any]) -> str:
        if "primitive" in ref:
            return {"boolean": "bool", "json": "any"}.get(ref["primitive"], ref["primitive"])
        if "union" in ref:
            names = [self._type_name(t) for t in ref["union"]["types"] if t.get("fqn") not in _RESOLVABLE]
            return names[0] if len(names) == 1 else "any"
        if "collection" in ref:
            coll = ref["collection"]
            return f"{coll['kind'] if coll['kind'] == 'map' else 'list'}({self._type_name(coll['elementtype'])})"
        fqn = ref.get("fqn", "")
        if fqn in _RESOLVABLE:
            return "bool"  # a computed boolean's getter returns IResolvable
        if self._is_struct(ref):
            return "object"
        if fqn.endswith("List") or fqn.endswith("Map"):
            inner = "object"
            return ("map" if fqn.endswith("Map") else "list") + f"({inner})"
        if fqn.endswith("OutputReference"):
            return "object"
        return "any"

    # -- schema ------------------------------------------------------------

    def _properties(self, fqn: str) -> list[dict[str, Any]]:
        """Properties of an interface, inherited ones (within the package) included."""
        t = self.types[fqn]
        props = list(t.get("properties", []))
        for parent in t.get("interfaces", []):
            if parent.startswith(self.assembly + ".") and parent in self.types:
                props.extend(self._properties(parent))
        return props

    def _js_name(self, class_fqn: str, camel: str) -> str:
        cls = class_fqn.rsplit(".", 1)[-1]
        return self.js_names.get(cls, {}).get(camel) or _snake(camel)

    def block(self, config_fqn: str, outputs_fqn: str | None) -> dict[str, Any]:
        """Schema of a block: its config struct plus the computed attributes of its output class."""
        key = f"{config_fqn}|{outputs_fqn}"
        if key in self.memo:
            return self.memo[key]
        self.open.add(config_fqn)
        attributes: dict[str, Any] = {}
        blocks: dict[str, Any] = {}
        settable: set[str] = set()
        for prop in self._properties(config_fqn):
            docs = prop.get("docs", {})
            text = docs.get("summary", "") + " " + docs.get("remarks", "")
            anchors = _ANCHOR.findall(text)
            name = anchors[-1] if anchors else _snake(prop["name"])
            settable.add(prop["name"])
            required = not prop.get("optional", False)
            shape, elem = self._shape(prop["type"])
            if docs.get("summary", "").endswith(" block."):
                if elem is None or elem in self.open:
                    # flattened by cdktf (too deep), or recursive (aws_wafv2_web_acl_rule's
                    # statement inside and_statement): the content is not checked
                    blocks[name] = {"nesting": "list", "min_items": int(required), "max_items": None, "opaque": True}
                    continue
                blocks[name] = {
                    "nesting": "single" if shape == "single" else "list",
                    "min_items": 1 if required else 0,
                    "max_items": 1 if shape == "single" else None,
                    "block": self.block(elem, elem + "OutputReference"),
                }
            else:
                attributes[name] = {"mode": "required" if required else "optional", "type": self._type_name(prop["type"])}
        out = self.types.get(outputs_fqn) if outputs_fqn else None
        if out is not None:
            for prop in out.get("properties", []):
                camel = prop["name"]
                if prop.get("static") or camel in settable or camel == "internalValue":
                    continue
                if camel.endswith("Input") and camel[: -len("Input")] in settable:
                    continue
                if not prop.get("immutable"):
                    continue  # a setter without a config property: not part of the schema
                name = self._js_name(outputs_fqn, camel)
                if name not in attributes and name not in blocks:
                    attributes[name] = {"mode": "computed", "type": self._type_name(prop["type"])}
        result = {"attributes": dict(sorted(attributes.items())), "blocks": dict(sorted(blocks.items()))}
        self.open.discard(config_fqn)
        self.memo[key] = result
        return result

    def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resources": {}, "data_sources": {}, "ephemeral_resources": {}, "provider": None}
        versions: collections.Counter[str] = collections.Counter()
        for fqn, t in self.types.items():
            if t.get("kind") != "class" or not t.get("base"):
                continue
            base = t["base"].split(".", 1)[-1]
            if base not in _KINDS and base != "TerraformProvider":
                continue
            params = t.get("initializer", {}).get("parameters", [])
            config = next((p["type"]["fqn"] for p in params if p["name"] == "config"), None)
            if config is None:
                raise SystemExit(f"{fqn}: no config parameter")
            schema = self.block(config, fqn)
            if base == "TerraformProvider":
                out["provider"] = schema
                continue
            m = _LINK.search(t.get("docs", {}).get("summary", ""))
            if not m:
                raise SystemExit(f"{fqn}: no registry link in its docs, cannot tell its Terraform type")
            versions[m.group("version")] += 1
            tf_type = m.group("type")
            js_type = self.js_types.get(t["name"])
            if js_type != tf_type:
                raise SystemExit(f"{fqn}: the docs say {tf_type}, the JavaScript's tfResourceType says {js_type}")
            out[_KINDS[base]][tf_type] = schema
        if len(versions) != 1:
            raise SystemExit(f"expected one provider version in the package, found {dict(versions)}")
        out["provider_version"] = next(iter(versions))
        for k in ("resources", "data_sources", "ephemeral_resources"):
            out[k] = dict(sorted(out[k].items()))
        return out


_RESOLVABLE = {"cdktf.IResolvable", "cdktn.IResolvable"}


def _scan_js(data: bytes, names: dict[str, dict[str, str]], types: dict[str, str]) -> None:
    for m in _JS_TYPE.finditer(data):
        types[m.group(1).decode()] = m.group(2).decode()
    starts = [(m.start(), m.group(1).decode()) for m in _JS_CLASS.finditer(data)]
    for i, (start, cls) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(data)
        chunk = data[start:end]
        found = names.setdefault(cls, {})
        static = _JS_STATIC_TYPE.search(chunk)
        if static:
            types[cls] = static.group(1).decode()
        for m in _JS_GETTER.finditer(chunk):
            found[m.group(1).decode()] = m.group(2).decode()
        for m in _JS_COMPLEX.finditer(chunk):
            found[m.group(1).decode()] = m.group(2).decode()


def extract(tgz: Path) -> dict[str, Any]:
    jsii = None
    package = None
    js_names: dict[str, dict[str, str]] = {}
    js_types: dict[str, str] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            if member.name == "package/.jsii":
                jsii = json.load(tar.extractfile(member))  # type: ignore[arg-type]
            elif member.name == "package/package.json":
                package = json.load(tar.extractfile(member))  # type: ignore[arg-type]
            elif member.name.startswith("package/lib/") and member.name.endswith(".js"):
                _scan_js(tar.extractfile(member).read(), js_names, js_types)  # type: ignore[union-attr]
    if jsii is None or package is None:
        raise SystemExit(f"{tgz}: no package/.jsii or package/package.json: not a cdktf provider package")
    if not js_types:
        raise SystemExit(f"{tgz}: no tfResourceType in the package's JavaScript: not a cdktf provider package?")
    schema = _Extractor(jsii, js_names, js_types).run()
    return {
        "format": FORMAT,
        "provider": "registry.terraform.io/hashicorp/aws",
        "provider_version": schema.pop("provider_version"),
        "package": f"{package['name']}@{package['version']}",
        **schema,
    }


def load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        schema = json.load(fh)
    if schema.get("format") != FORMAT:
        raise ValueError(f"{path}: schema format {schema.get('format')}, expected {FORMAT}; delete it to re-extract")
    return schema


MANIFEST = Path(__file__).resolve().parent / "provider_schemas.json"
DEFAULT_CACHE = Path.home() / ".cache" / "tenant-api" / "aws-provider-schema"


def _write(schema: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".schema-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(schema, fh, separators=(",", ":"))
    os.replace(tmp, out)


def _cached(path: Path, package: str) -> bool:
    try:
        return load(path).get("package") == package
    except (OSError, ValueError):
        return False


def fetch(cache: Path) -> int:
    """Extract every schema of the manifest that the cache lacks; 0 when all are there."""
    wanted = json.loads(MANIFEST.read_text(encoding="utf-8"))["versions"]
    missing = {v: spec for v, spec in wanted.items() if not _cached(cache / f"{v}.json", spec["package"])}
    for version in wanted:
        if version not in missing:
            print(f"schema hashicorp/aws {version}: cached in {cache}")
    if not missing:
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print("error: npm is needed once to fetch the provider schemas (Debian: apt-get install npm; "
              f"or Node.js from https://nodejs.org); they are then cached in {cache}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        for version, spec in sorted(missing.items()):
            print(f"schema hashicorp/aws {version}: npm pack {spec['package']}", flush=True)
            proc = subprocess.run([npm, "pack", "--silent", "--pack-destination", work, spec["package"]],
                                  capture_output=True, text=True, cwd=work, timeout=900)
            names = proc.stdout.split()
            if proc.returncode != 0 or not names:
                print(f"error: npm pack {spec['package']} failed:\n{proc.stderr}", file=sys.stderr)
                return 1
            tgz = Path(work) / names[-1]
            algo, _, want = spec["integrity"].partition("-")
            got = base64.b64encode(hashlib.new(algo, tgz.read_bytes()).digest()).decode()
            if got != want:
                print(f"error: {spec['package']}: integrity {algo}-{got}, expected {spec['integrity']}", file=sys.stderr)
                return 1
            schema = extract(tgz)
            if schema["provider_version"] != version:
                print(f"error: {spec['package']} holds hashicorp/aws {schema['provider_version']}, expected {version}",
                      file=sys.stderr)
                return 1
            _write(schema, cache / f"{version}.json")
            tgz.unlink()
            print(f"schema hashicorp/aws {version}: {len(schema['resources'])} resources, "
                  f"{len(schema['data_sources'])} data sources -> {cache / (version + '.json')}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fe = sub.add_parser("fetch", help="fetch and extract the schemas of provider_schemas.json into the cache")
    fe.add_argument("--cache", type=Path, default=Path(os.environ.get("TF_SCHEMA_CACHE") or DEFAULT_CACHE))
    ex = sub.add_parser("extract", help="turn a provider package tarball into a schema JSON")
    ex.add_argument("tgz", type=Path)
    ex.add_argument("out", type=Path)
    ex.add_argument("--expect-version", help="fail unless the package was generated from this provider version")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        return fetch(args.cache)
    schema = extract(args.tgz)
    if args.expect_version and schema["provider_version"] != args.expect_version:
        print(f"error: {args.tgz} holds hashicorp/aws {schema['provider_version']}, expected {args.expect_version}",
              file=sys.stderr)
        return 1
    _write(schema, args.out)
    print(f"{args.out}: hashicorp/aws {schema['provider_version']} from {schema['package']}: "
          f"{len(schema['resources'])} resources, {len(schema['data_sources'])} data sources")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
