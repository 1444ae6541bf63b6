#!/usr/bin/env python3
"""Generate IAM database auth token test vectors with botocore.

The output, ``token_vectors.json`` next to this script, is the reference the
Rust ``db-auth`` crate is tested against: each case fixes the credentials, the
clock and the target, and records the token that botocore itself produces
with

* RDS / Aurora:  ``rds.generate_db_auth_token(DBHostname, Port, DBUsername, Region)``
* Aurora DSQL:   ``dsql.generate_db_connect_auth_token(Hostname, Region, ExpiresIn)``
* Aurora DSQL:   ``dsql.generate_db_connect_admin_auth_token(Hostname, Region, ExpiresIn)``

Everything runs offline.  Credentials are passed explicitly to
``create_client``; shared config / credential files, IMDS and every other
``AWS_*`` environment variable are neutralised before botocore is imported, and
socket connections are refused for the lifetime of the process, so nothing can
reach AWS.  The clock is frozen by replacing ``get_current_datetime`` in
``botocore.auth`` (the SigV4 signers call ``botocore.compat.get_current_datetime``
through that module-level name, which returns a naive UTC datetime).

Usage (from anywhere; paths are relative to this file)::

    python3 -m venv ~/.cache/tenant-api/venv-botocore
    ~/.cache/tenant-api/venv-botocore/bin/pip install botocore==1.44.5

    # (re)write token_vectors.json
    ~/.cache/tenant-api/venv-botocore/bin/python crates/db-auth/tests/data/gen_token_vectors.py

    # CI: regenerate in memory, exit 1 if token_vectors.json differs
    ~/.cache/tenant-api/venv-botocore/bin/python crates/db-auth/tests/data/gen_token_vectors.py --check

    # print botocore's canonical request / string-to-sign for every case
    ~/.cache/tenant-api/venv-botocore/bin/python crates/db-auth/tests/data/gen_token_vectors.py --debug --check

Options:
    --check         do not write; compare with the committed file (exit 1 on
                    any difference, exit 0 if identical)
    --output PATH   write/compare PATH instead of ./token_vectors.json
    --debug         dump CanonicalRequest / StringToSign / Signature to stderr

Note: ``botocore_version`` is part of the file, so ``--check`` also fails when
run with a different botocore version than the one that produced the fixture;
regenerate (and review the token diff) when upgrading botocore.
"""

import argparse
import os
import sys

# --- isolate from the host environment before botocore is imported ----------
for _k in list(os.environ):
    if _k.startswith("AWS_") or _k.startswith("BOTO_"):
        del os.environ[_k]
os.environ.update(
    {
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)

import socket  # noqa: E402


def _no_network(*_args, **_kwargs):
    raise RuntimeError("gen_token_vectors.py must not open network connections")


socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
socket.create_connection = _no_network
socket.getaddrinfo = _no_network

import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from unittest import mock  # noqa: E402

import botocore  # noqa: E402
import botocore.auth  # noqa: E402
import botocore.session  # noqa: E402

GENERATOR = "crates/db-auth/tests/data/gen_token_vectors.py"
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "token_vectors.json"
)

# AWS documentation example key pair (not a real credential).
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Fake STS-looking session token; contains '+', '/' and '=' so the
# percent-encoding of X-Amz-Security-Token is exercised.
SESSION_TOKEN = (
    "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCWV1LXdlc3QtMSJHMEUCIQD+example/"
    "SESSION+token/with+plus/and/slash+AiB4ZXhhbXBsZS90b2tlbi92YWx1ZQ=="
    "KpsCCBAQABoMMTIzNDU2Nzg5MDEyIgz+EXAMPLE/SessionToken+Zm9vYmFy=="
)

DEFAULT_TIME = "2026-11-22T10:49:13Z"


def _case(name, kind, host, region, *, port=None, user=None, session=False,
          time=DEFAULT_TIME, expires_in=900):
    return {
        "name": name,
        "kind": kind,
        "host": host,
        "port": port,
        "user": user,
        "region": region,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "session_token": SESSION_TOKEN if session else None,
        "time": time,
        "expires_in": expires_in,
    }


AURORA = "mycluster.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"
AURORA_RO = "mycluster.cluster-ro-abc123xyz.eu-west-1.rds.amazonaws.com"
RDS_US = "mydb.c9akciq32.us-east-2.rds.amazonaws.com"
DSQL = "abcdefghijklmnopqrst.dsql.us-east-1.on.aws"
DSQL_EU = "tsrqponmlkjihgfedcba.dsql.eu-west-1.on.aws"

CASES = [
    # --- RDS / Aurora (expires_in is hard-coded to 900 by botocore) --------
    _case("rds_aurora_cluster_basic", "rds", AURORA, "eu-west-1",
          port=5432, user="app_runtime"),
    _case("rds_aurora_cluster_session", "rds", AURORA, "eu-west-1",
          port=5432, user="app_runtime", session=True),
    _case("rds_aurora_reader_encoded_user", "rds", AURORA_RO, "eu-west-1",
          port=5432, user="app user+1@x"),
    _case("rds_aurora_reader_encoded_user_session", "rds", AURORA_RO,
          "eu-west-1", port=5432, user="app user+1@x", session=True),
    _case("rds_us_east_2_port_5433", "rds", RDS_US, "us-east-2",
          port=5433, user="app_runtime"),
    _case("rds_us_east_2_port_5433_session", "rds", RDS_US, "us-east-2",
          port=5433, user="app_runtime", session=True),
    # Every character class: unreserved (-._~ kept), reserved, '%', UTF-8.
    _case("rds_user_all_special_chars", "rds", AURORA, "eu-west-1",
          port=5432, user="t-1_a.b~c/d=e&f%g:h;i,j?k#l'm\"n(o)p*q!r$s\u00fc\u20ac"),
    # Default https port: botocore drops ':443' from the signed host header
    # but keeps it in the returned token string.
    _case("rds_port_443_host_header_without_port", "rds", AURORA,
          "eu-west-1", port=443, user="app_runtime"),
    # botocore signs the host header lower-cased (urlsplit().hostname) but
    # keeps the caller's spelling in the returned token.
    _case("rds_mixed_case_host", "rds",
          "MyCluster.Cluster-ABC123xyz.eu-west-1.rds.amazonaws.com",
          "eu-west-1", port=5432, user="app_runtime"),
    # Credential scope date must follow the frozen clock (one second to midnight).
    _case("rds_just_before_midnight_session", "rds", RDS_US, "us-east-2",
          port=5432, user="app_runtime", session=True,
          time="2026-12-31T23:59:59Z"),
    # --- Aurora DSQL ------------------------------------------------------
    _case("dsql_connect_basic", "dsql", DSQL, "us-east-1"),
    _case("dsql_connect_session", "dsql", DSQL, "us-east-1", session=True),
    _case("dsql_admin_basic", "dsql_admin", DSQL, "us-east-1"),
    _case("dsql_admin_session", "dsql_admin", DSQL, "us-east-1",
          session=True),
    _case("dsql_connect_eu_west_1_session", "dsql", DSQL_EU, "eu-west-1",
          session=True),
    _case("dsql_admin_expires_3600", "dsql_admin", DSQL, "us-east-1",
          expires_in=3600),
]


def _parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def generate_token(session, case):
    frozen = _parse_time(case["time"])  # naive UTC, as botocore expects
    service = "rds" if case["kind"] == "rds" else "dsql"
    client = session.create_client(
        service,
        region_name=case["region"],
        aws_access_key_id=case["access_key_id"],
        aws_secret_access_key=case["secret_access_key"],
        aws_session_token=case["session_token"],
    )
    with mock.patch.object(botocore.auth, "get_current_datetime",
                           lambda *a, **k: frozen):
        if case["kind"] == "rds":
            if case["expires_in"] != 900:
                raise ValueError("botocore's RDS token always expires in 900 s")
            return client.generate_db_auth_token(
                DBHostname=case["host"],
                Port=case["port"],
                DBUsername=case["user"],
                Region=case["region"],
            )
        if case["kind"] == "dsql":
            fn = client.generate_db_connect_auth_token
        elif case["kind"] == "dsql_admin":
            fn = client.generate_db_connect_admin_auth_token
        else:
            raise ValueError(f"unknown kind {case['kind']!r}")
        return fn(Hostname=case["host"], Region=case["region"],
                  ExpiresIn=case["expires_in"])


def build_document():
    session = botocore.session.Session()
    cases = []
    for case in CASES:
        out = dict(case)
        out["token"] = generate_token(session, case)
        if f"X-Amz-Date={case['time'].replace('-', '').replace(':', '')}" \
                not in out["token"]:
            raise RuntimeError(f"{case['name']}: clock was not frozen")
        if f"X-Amz-Expires={case['expires_in']}&" not in out["token"]:
            raise RuntimeError(f"{case['name']}: unexpected X-Amz-Expires")
        cases.append(out)
    names = [c["name"] for c in cases]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate case names")
    return {
        "generator": GENERATOR,
        "botocore_version": botocore.__version__,
        "cases": cases,
    }


def render(document):
    # Key order is fixed by construction (the field order documented above),
    # not sorted, so the file reads name -> inputs -> token.
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed file instead of writing")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="fixture path (default: %(default)s)")
    parser.add_argument("--debug", action="store_true",
                        help="log CanonicalRequest/StringToSign to stderr")
    args = parser.parse_args(argv)

    if args.debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log = logging.getLogger("botocore.auth")
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)

    text = render(build_document())

    if args.check:
        try:
            with open(args.output, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            print(f"{args.output}: missing; run without --check", file=sys.stderr)
            return 1
        if current != text:
            import difflib
            sys.stderr.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=args.output + " (committed)",
                tofile=args.output + f" (botocore {botocore.__version__})",
            ))
            print(f"{args.output} is out of date; rerun {GENERATOR}",
                  file=sys.stderr)
            return 1
        print(f"{args.output}: OK ({len(CASES)} cases, botocore "
              f"{botocore.__version__})")
        return 0

    with open(args.output, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print(f"wrote {args.output} ({len(CASES)} cases, botocore "
          f"{botocore.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
