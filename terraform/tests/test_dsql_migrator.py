"""The migration function that Terraform invokes on Aurora DSQL waits for its asynchronous index
builds with `CALL sys.wait_for_job(...)`: on DSQL it is a procedure, and `SELECT
sys.wait_for_job(...)` is refused, which failed the first apply at the first index
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-create-index-async.html).
The waiting path itself runs only against DSQL; this keeps the call honest offline.
"""

from __future__ import annotations

import re

from tfconfig import tf_dir

MIGRATOR = tf_dir().parent / "crates" / "schema" / "src" / "migrate_dsql.rs"


def test_the_dsql_migrator_calls_the_wait_procedure():
    code = MIGRATOR.read_text()
    # In the statements it sends (string literals), not in what its comments say.
    assert re.search(r'"CALL sys\.wait_for_job\(', code), "the migrator waits with CALL"
    assert not re.search(r'"[^"\n]*SELECT\s+sys\.wait_for_job', code, re.IGNORECASE), "SELECT is refused on DSQL"
