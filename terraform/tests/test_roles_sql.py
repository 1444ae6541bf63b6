"""What `bootstrap_database` sends as Aurora's master user (migrations/bootstrap/roles.sql) is
something the master user may run: it is a member of rds_superuser with CREATEROLE and CREATEDB,
not a superuser, and PostgreSQL lets only a superuser name the SUPERUSER or BYPASSRLS attribute
in ALTER ROLE, even to take it away ("must be superuser to alter superuser roles or change
superuser attribute"). The Rust test crates/store/tests/aurora_admin.rs runs the file as such a
role on a real PostgreSQL; this one keeps the Terraform path's input honest on its own.
"""

from __future__ import annotations

import re

from tfconfig import tf_dir

ROLES = tf_dir().parent / "migrations" / "bootstrap" / "roles.sql"
PRIVILEGED = re.compile(r"\bALTER\s+ROLE\b[^;]*\b(NO)?(SUPERUSER|BYPASSRLS|REPLICATION)\b", re.IGNORECASE)


def _top_level_statements(sql: str) -> list[str]:
    """The statements outside DO blocks (whose bodies run only where their conditions hold)."""
    without_comments = re.sub(r"--[^\n]*", "", sql)
    outside = re.sub(r"\$\$.*?\$\$", "$$ $$", without_comments, flags=re.DOTALL)
    return [s.strip() for s in outside.split(";") if s.strip()]


def test_no_top_level_statement_names_a_superuser_only_attribute():
    offending = [s for s in _top_level_statements(ROLES.read_text()) if PRIVILEGED.search(s)]
    assert offending == [], f"Aurora's master user may not run these: {offending}"


def test_superuser_only_attributes_are_changed_only_by_a_superuser():
    sql = ROLES.read_text()
    for body in re.findall(r"\$\$(.*?)\$\$", sql, flags=re.DOTALL):
        if PRIVILEGED.search(body):
            guard = body.find("rolsuper FROM pg_roles WHERE rolname = current_user")
            assert 0 <= guard < PRIVILEGED.search(body).start(), (
                "a DO block that names SUPERUSER or BYPASSRLS must first check that it runs as a superuser"
            )


def test_the_checks_catch_the_statement_aurora_refused():
    refused = "ALTER ROLE app_owner NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;"
    assert any(PRIVILEGED.search(s) for s in _top_level_statements(refused))
