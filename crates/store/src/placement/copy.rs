//! Steps 3 and 4 of a move (see [`super::mover`]): the copy of a tenant's row, todos and live
//! idempotency records into the target, and the count and MD5 that check it on both sides.

use tokio_postgres::Client;
use uuid::Uuid;

use super::moving::{BATCH, Direction, SCOPE, fail};
use crate::Result;

/// Copies tenant `t`'s row, todos and idempotency records from `source` to `target`, replacing
/// whatever an earlier run left there; (todos, records) copied.
pub(super) async fn copy(source: &Client, target: &Client, t: Uuid, to: Direction) -> Result<(i64, i64)> {
    source.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.map_err(fail("reading"))?;
    let read = async {
        source.query(SCOPE, &[&t]).await?;
        let tenant = source.query_one("SELECT name, created_at, plan FROM tenants WHERE id = $1", &[&t]).await?;
        let todos = source
            .query(
                "SELECT id, title, complete, created_at, updated_at FROM todos WHERE tenant_id = $1 ORDER BY id",
                &[&t],
            )
            .await?;
        let records = source
            .query(
                "SELECT user_id, key, fingerprint, results, claim, created_at, expires_at FROM idempotency_keys \
                 WHERE tenant_id = $1 AND expires_at > now()",
                &[&t],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>((tenant, todos, records))
    }
    .await;
    let _ = source.batch_execute("COMMIT").await;
    let (tenant, todos, records) = read.map_err(fail("reading the tenant"))?;

    target.batch_execute("BEGIN").await.map_err(fail("copying"))?;
    let written = async {
        target.query(SCOPE, &[&t]).await?;
        let name: String = tenant.get(0);
        let created: time::OffsetDateTime = tenant.get(1);
        let plan: Option<String> = tenant.get(2);
        if to == Direction::ToDedicated {
            // A dedicated database holds nothing else of the tenant: start from its row alone.
            target.execute("DELETE FROM tenants WHERE id = $1", &[&t]).await?;
            target
                .execute(
                    "INSERT INTO tenants (id, name, created_at, plan) VALUES ($1, $2, $3, $4)",
                    &[&t, &name, &created, &plan],
                )
                .await?;
            target.execute("DELETE FROM idempotency_keys WHERE tenant_id = $1", &[&t]).await?;
        } else {
            target.execute("DELETE FROM todos WHERE tenant_id = $1", &[&t]).await?;
        }
        target.execute("DELETE FROM tenant_fences WHERE tenant_id = $1", &[&t]).await?;
        for chunk in todos.chunks(BATCH as usize) {
            let ids: Vec<Uuid> = chunk.iter().map(|r| r.get(0)).collect();
            let titles: Vec<String> = chunk.iter().map(|r| r.get(1)).collect();
            let done: Vec<bool> = chunk.iter().map(|r| r.get(2)).collect();
            let created: Vec<time::OffsetDateTime> = chunk.iter().map(|r| r.get(3)).collect();
            let updated: Vec<time::OffsetDateTime> = chunk.iter().map(|r| r.get(4)).collect();
            target
                .execute(
                    "INSERT INTO todos (tenant_id, id, title, complete, created_at, updated_at) \
                     SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::bool[], $5::timestamptz[], $6::timestamptz[])",
                    &[&t, &ids, &titles, &done, &created, &updated],
                )
                .await?;
        }
        for r in &records {
            let results: Vec<String> = r.get(3);
            target
                .execute(
                    "INSERT INTO idempotency_keys (user_id, tenant_id, key, fingerprint, results, claim, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[&r.get::<_, Uuid>(0), &t, &r.get::<_, String>(1), &r.get::<_, Vec<u8>>(2), &results,
                      &r.get::<_, Uuid>(4), &r.get::<_, time::OffsetDateTime>(5), &r.get::<_, time::OffsetDateTime>(6)],
                )
                .await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    }
    .await;
    match written {
        Ok(()) => target.batch_execute("COMMIT").await.map_err(fail("copying"))?,
        Err(e) => {
            let _ = target.batch_execute("ROLLBACK").await;
            return Err(fail("copying")(e));
        }
    }
    Ok((todos.len() as i64, records.len() as i64))
}

/// The number of tenant `t`'s todos in `db` and an MD5 over all their columns.
pub(super) async fn digest(db: &Client, t: Uuid) -> Result<(i64, String)> {
    db.batch_execute("BEGIN READ ONLY").await.map_err(fail("checking"))?;
    let read = async {
        db.query(SCOPE, &[&t]).await?;
        db.query_one(
            "SELECT count(*), coalesce(md5(string_agg(concat_ws('|', id, title, complete, created_at, updated_at), ',' ORDER BY id)), '') \
             FROM todos WHERE tenant_id = $1",
            &[&t],
        )
        .await
    }
    .await;
    let _ = db.batch_execute("COMMIT").await;
    let row = read.map_err(fail("checking the copy"))?;
    Ok((row.get(0), row.get(1)))
}
