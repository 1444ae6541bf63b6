//! A tenant of 10,000 todos and 2,000 pending invitations is deleted through the API. On the DSQL engine the stand-in counts
//! every transaction's changed rows with their index entries (the strictest reading of DSQL's
//! 3,000-row limit) and refuses a commit past it: the purge must stay within it, or the
//! tenant's rows would be left behind.

mod common;

use common::TestApp;
use http::StatusCode;

#[tokio::test]
async fn a_tenant_of_ten_thousand_todos_is_deleted_within_dsqls_row_limit() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Big").await;
    let id: uuid::Uuid = tenant.parse().unwrap();
    // Written directly: through the API it would take a while. Several tables with many rows,
    // as a purge transaction deletes from each.
    let admin = t.db.admin().await;
    admin
        .execute(
            "INSERT INTO todos (tenant_id, id, title) SELECT $1, gen_random_uuid(), 'todo ' || n FROM generate_series(1, 10000) n",
            &[&id],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO invitations (tenant_id, code_hash, role, expires_at, created_by) \
             SELECT $1, sha256(('code ' || n)::bytea), 'member', now() + interval '1 day', \
                    (SELECT id FROM users WHERE subject = 'alice') FROM generate_series(1, 2000) n",
            &[&id],
        )
        .await
        .unwrap();
    let reply = t.delete("alice", &format!("/api/tenants/{tenant}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    // A purge cut short by the request's deadline is finished by the scheduled cleanup.
    t.app.store().purge_deleted_tenants().await.unwrap();
    for table in ["todos", "invitations"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
        let left: i64 = admin.query_one(&sql, &[&id]).await.unwrap().get(0);
        assert_eq!(left, 0, "every row of the deleted tenant in {table} is gone");
    }
    if let Some(standin) = &t.standin {
        let most = standin.max_transaction_rows();
        assert!((1..=3_000).contains(&most), "the largest transaction changed {most} rows and index entries");
        assert_eq!(standin.refused_statements(), 0, "no transaction was refused");
    }
}
