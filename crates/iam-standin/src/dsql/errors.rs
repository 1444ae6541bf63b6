//! DSQL's errors, as the stand-in sends them: an `ErrorResponse` with DSQL's SQLSTATE and the
//! shape of its message; and the upstream PostgreSQL's errors that DSQL would have reported
//! its own way (a lock that PostgreSQL would wait for is DSQL's optimistic-concurrency conflict).

/// A statement or commit that DSQL refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// OC000's message: a transaction's writes (or `FOR UPDATE` reads) met another's, as AWS's
/// page words it (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-concurrency-control.html>).
pub(crate) const OC000: &str = "mutation conflicts with another transaction, retry as needed (OC000)";

// The limits' SQLSTATEs and messages below are those of AWS's quotas page,
// <https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html>.

impl Refusal {
    /// `0A000` with `message`: DSQL's answer to what it does not support
    /// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-postgresql-compatibility-unsupported-features.html>;
    /// the messages are those clusters answer, which AWS does not document).
    pub(crate) fn unsupported(message: &str) -> Self {
        Self { code: "0A000", message: message.to_string() }
    }

    /// `42883`: DSQL has no such function (advisory locks).
    pub(crate) fn undefined_function(name: &str) -> Self {
        Self { code: "42883", message: format!("function {name} does not exist") }
    }

    /// `0A000`: a second DDL statement in one transaction
    /// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-ddl.html>).
    pub(crate) fn multiple_ddl() -> Self {
        Self::unsupported("multiple ddl statements not supported in a transaction")
    }

    /// `0A000`: DDL and DML in one transaction (the same page).
    pub(crate) fn ddl_with_dml() -> Self {
        Self::unsupported("ddl and dml are not supported in the same transaction")
    }

    /// `40001` with `OC000`: an optimistic-concurrency conflict.
    pub(crate) fn conflict() -> Self {
        Self { code: "40001", message: OC000.into() }
    }

    /// `54000`: a transaction changed more rows (and index entries) than DSQL allows.
    pub(crate) fn too_many_rows() -> Self {
        Self { code: "54000", message: "transaction row limit exceeded".into() }
    }

    /// `54000`: a transaction wrote more bytes than DSQL allows.
    pub(crate) fn too_many_bytes(limit: u64) -> Self {
        Self { code: "54000", message: format!("transaction size limit {}mb exceeded", limit.div_ceil(1024 * 1024)) }
    }

    /// `54000`: a transaction ran longer than DSQL allows.
    pub(crate) fn too_old(limit_secs: u64) -> Self {
        Self { code: "54000", message: format!("transaction age limit of {limit_secs}s exceeded") }
    }

    /// `54000`: an index key longer than DSQL allows.
    pub(crate) fn key_too_long() -> Self {
        Self { code: "54000", message: "key size too large".into() }
    }

    /// The `ErrorResponse` message.
    pub(crate) fn to_message(&self) -> Vec<u8> {
        crate::wire::error_response("ERROR", self.code, &self.message)
    }
}

/// The fields of an `ErrorResponse` body: (type, value).
pub(crate) fn fields(body: &[u8]) -> Vec<(u8, String)> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

/// The SQLSTATE of an `ErrorResponse` body.
pub(crate) fn code_of(body: &[u8]) -> Option<String> {
    fields(body).into_iter().find(|(k, _)| *k == b'C').map(|(_, v)| v)
}
