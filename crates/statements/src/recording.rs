//! The text of the recording variants of statements (see `store::idempotency`): each
//! statement wrapped as the CTE `__out` beside a CTE that records its rows, with the record's
//! parameters numbered after the statement's own. Text only: no connection, no engine; the
//! PostgreSQL variants are here and the Aurora DSQL ones in [`crate::dsql`], both built from
//! [`wrap_recorded`].

use crate::Q;

/// The highest `$n` in `sql`.
pub fn params(sql: &str) -> usize {
    let b = sql.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] == b'$')
        .filter_map(|i| {
            let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// The variant of statement `sql` that also appends its rows, as JSON, to the record that an
/// earlier statement of the request made. After the statement's own parameters it takes the
/// record's tenant and key. Its columns are the statement's, in order.
pub fn recorded_sql(sql: &str) -> String {
    const RECORD: &str = "__record AS (UPDATE idempotency_keys \
         SET results = array_append(results, (SELECT coalesce(json_agg(__out)::text, '[]') FROM __out)) \
         WHERE user_id = app_user_id() AND tenant_id = $IT::uuid AND key = $IK::text RETURNING 1)";
    number_record(sql, wrap_recorded(sql, RECORD))
}

/// The variant of statement `sql` that inserts the request's record with its rows as JSON: the
/// request's first recorded statement. After the statement's own parameters it takes the
/// record's tenant, key, fingerprint, life (seconds) and claim. A data-modifying CTE always
/// runs to the end, and the aggregate gives one row even when the statement gives none. The
/// insert fails on idempotency_keys_pkey when the key is taken, which rolls back the
/// statement's effect with it.
pub fn recording_sql(sql: &str) -> String {
    const RECORD: &str = "__record AS (INSERT INTO idempotency_keys \
         (user_id, tenant_id, key, fingerprint, expires_at, claim, results) \
         SELECT app_user_id(), $IT::uuid, $IK::text, $IF::bytea, now() + $IL::int8 * interval '1 second', $IC::uuid, \
           ARRAY[coalesce(json_agg(__out)::text, '[]')] FROM __out \
         RETURNING 1)";
    number_record(sql, wrap_recorded(sql, RECORD))
}

/// `recorded` with the record's parameters numbered after `sql`'s own.
fn number_record(sql: &str, recorded: String) -> String {
    let n = params(sql);
    ["$IT", "$IK", "$IF", "$IL", "$IC"]
        .iter()
        .enumerate()
        .fold(recorded, |text, (i, name)| text.replace(name, &format!("${}", n + 1 + i)))
}

/// `sql` as the CTE `__out`, beside `record` (a CTE that reads `__out`), answering `__out`'s
/// rows.
pub fn wrap_recorded(sql: &str, record: &str) -> String {
    match split_with(sql) {
        Some((ctes, main)) => format!("{ctes}, __out AS ({main}), {record} SELECT * FROM __out"),
        None => format!("WITH __out AS ({sql}), {record} SELECT * FROM __out"),
    }
}

/// Whether `q` runs as a request's step (and so is recorded under a key): not the scope
/// resolution, not the record's own statements.
pub fn is_recorded(q: Q) -> bool {
    !q.is_placement()
        && !matches!(
            q,
            Q::ScopeSet
                | Q::ScopeMember
                | Q::ScopeAll
                | Q::IdemClaim
                | Q::IdemFetch
                | Q::IdemForget
                | Q::IdemCleanup
                | Q::PurgeTenant
                | Q::OrphanTenants
                | Q::RateRowTenant
                | Q::RateRowCaller
                | Q::RateLeaseTenant
                | Q::RateLeaseCaller
        )
}

/// Splits `WITH a AS (...), b AS (...) <main statement>` into the CTE list and the main
/// statement; `None` for a statement without a `WITH`.
fn split_with(sql: &str) -> Option<(&str, &str)> {
    let rest = sql.strip_prefix("WITH ")?;
    let bytes = rest.as_bytes();
    let mut i = 0;
    loop {
        // name AS ( ... )
        let open = i + rest[i..].find('(')?;
        let mut depth = 0;
        let mut quoted = false;
        let mut close = None;
        for (j, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'\'' => quoted = !quoted,
                b'(' if !quoted => depth += 1,
                b')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        i = close? + 1;
        let after = rest[i..].trim_start();
        match after.strip_prefix(',') {
            Some(more) => i = rest.len() - more.len(),
            None => {
                let main_at = rest.len() - after.len();
                return Some((sql[..5 + i].trim_end(), &rest[main_at..]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_statement_is_found_after_the_ctes() {
        let (ctes, main) =
            split_with("WITH me AS (SELECT role FROM m WHERE x = '(' ), up AS (UPDATE t SET a = f(1) RETURNING 1) SELECT me.role FROM me")
                .unwrap();
        assert_eq!(ctes, "WITH me AS (SELECT role FROM m WHERE x = '(' ), up AS (UPDATE t SET a = f(1) RETURNING 1)");
        assert_eq!(main, "SELECT me.role FROM me");
        assert!(split_with("SELECT 1").is_none());
        let sql = recorded_sql("UPDATE users SET name = $1 RETURNING id");
        assert!(
            sql.starts_with("WITH __out AS (UPDATE users SET name = $1 RETURNING id), __record AS (UPDATE"),
            "{sql}"
        );
        assert!(sql.contains("tenant_id = $2::uuid AND key = $3::text"), "the record's tenant and key follow: {sql}");
        let sql = recording_sql("WITH a AS (SELECT 1) UPDATE users SET name = $1 RETURNING id");
        assert!(
            sql.starts_with(
                "WITH a AS (SELECT 1), __out AS (UPDATE users SET name = $1 RETURNING id), __record AS (INSERT"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("$2::uuid, $3::text, $4::bytea, now() + $5::int8 * interval '1 second', $6::uuid"),
            "the record's tenant, key, fingerprint, life and claim follow: {sql}"
        );
    }
}
