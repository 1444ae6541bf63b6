//! DSQL's own syntax, rewritten to the emulation of its `sys` schema (`sql/dsql-sys.sql`, which
//! [`SYS_SQL`] holds and the local cluster's superuser installs in each DSQL database).

/// The emulation of DSQL's `sys` objects: run once per database by the local superuser.
pub const SYS_SQL: &str = include_str!("../../sql/dsql-sys.sql");

/// DSQL's maximum index key, in bytes
/// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html>).
pub const INDEX_KEY_LIMIT: u64 = 1024;

/// A string as a dollar-quoted literal whose tag the text does not contain.
fn literal(text: &str) -> String {
    let mut tag = String::from("dsql");
    while text.contains(&format!("${tag}$")) {
        tag.push('x');
    }
    format!("${tag}${text}${tag}$")
}

/// `CREATE [UNIQUE] INDEX ASYNC name ON ...` (as the parser prints it back): the same statement
/// without `ASYNC`, built by the emulation, which answers a `job_id` as DSQL does.
pub(crate) fn create_index_async(statement: &str, index: &str) -> String {
    let sync = statement.replacen(" ASYNC ", " ", 1);
    format!("SELECT job_id FROM sys.__create_index_async({}, {}, {INDEX_KEY_LIMIT})", literal(&sync), literal(index))
}

/// `AWS IAM GRANT roles TO arns` / `AWS IAM REVOKE roles FROM arns`: one call of the emulation
/// per role and ARN.
pub(crate) fn iam_mapping(grant: bool, roles: &[String], arns: &[String]) -> String {
    let mut calls = Vec::new();
    for role in roles {
        for arn in arns {
            calls.push(format!("CALL sys.__iam_mapping({grant}, {}, {})", literal(role), literal(arn)));
        }
    }
    calls.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_never_end_early() {
        assert_eq!(literal("a"), "$dsql$a$dsql$");
        assert_eq!(literal("x $dsql$ y"), "$dsqlx$x $dsql$ y$dsqlx$");
    }

    #[test]
    fn async_indexes_lose_only_the_keyword() {
        let sql = create_index_async("CREATE UNIQUE INDEX ASYNC IF NOT EXISTS k ON users (issuer, subject)", "k");
        assert!(sql.contains("$dsql$CREATE UNIQUE INDEX IF NOT EXISTS k ON users (issuer, subject)$dsql$"), "{sql}");
    }
}
