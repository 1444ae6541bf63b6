//! The registry as the operator's tools see it (`scripts/tenant.sh`, `scripts/migrate.sh`), as
//! the owner role of the control database.

use tokio_postgres::Client;
use uuid::Uuid;

use super::{Database, moving::fail};
use crate::{Result, TenantId, rows::DbRow};

/// The columns `Database::from_row` reads, after the name, for a `databases` row `d`.
const COLUMNS: &str = "d.name, d.id, d.host, host(d.hostaddr), d.port::int8, d.dbname, d.db_user, d.auth, d.tls";

fn named(row: tokio_postgres::Row) -> Result<(String, Database)> {
    let row = DbRow::Pg(row);
    Ok((row.col(0), Database::from_row(&row, 1)?))
}

/// Registers dedicated database `db` under `name` (or updates the entry of that name); its id.
pub async fn register(control: &Client, name: &str, db: &Database) -> Result<Uuid> {
    let port = i32::from(db.port);
    let addr = db.hostaddr.map(|a| a.to_string());
    let row = control
        .query_one(
            "INSERT INTO databases (name, host, hostaddr, port, dbname, db_user, auth, tls) \
             VALUES ($1, $2, $3::text::inet, $4, $5, $6, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET host = excluded.host, hostaddr = excluded.hostaddr, port = excluded.port, \
               dbname = excluded.dbname, db_user = excluded.db_user, auth = excluded.auth, tls = excluded.tls \
             RETURNING id",
            &[&name, &db.host, &addr, &port, &db.dbname, &db.user, &db.auth, &db.tls],
        )
        .await
        .map_err(fail("registering the database"))?;
    Ok(row.get(0))
}

/// Every tenant with its placement: (tenant id, name, database name or `None` for pooled).
pub async fn list(control: &Client) -> Result<Vec<(Uuid, String, Option<String>)>> {
    let rows = control
        .query(
            "SELECT t.id, t.name, d.name FROM tenants t LEFT JOIN tenant_placements p ON p.tenant_id = t.id \
             LEFT JOIN databases d ON d.id = p.database_id ORDER BY t.created_at, t.id",
            &[],
        )
        .await
        .map_err(fail("listing tenants"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Every registered dedicated database, with its name.
pub async fn databases(control: &Client) -> Result<Vec<(String, Database)>> {
    let rows = control
        .query(&format!("SELECT {COLUMNS} FROM databases d ORDER BY d.name"), &[])
        .await
        .map_err(fail("reading the registry"))?;
    rows.into_iter().map(named).collect()
}

/// The dedicated database `tenant` lives in, with its name; `None` when pooled.
pub async fn placement_of(control: &Client, tenant: TenantId) -> Result<Option<(String, Database)>> {
    let row = control
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM tenant_placements p JOIN databases d ON d.id = p.database_id \
                 WHERE p.tenant_id = $1"
            ),
            &[&tenant.0],
        )
        .await
        .map_err(fail("reading the registry"))?;
    row.map(named).transpose()
}

/// What `scripts/tenant.sh move --to dedicated` checks before it moves anything: a dedicated
/// database holds one tenant, so a database that the registry places another tenant in, or that
/// holds another tenant's rows (a name reused, an operator's wrong URL), is refused. (The
/// mover itself can put several tenants in one database, as the tests' second cluster does.)
pub async fn refuse_shared(control: &Client, dedicated: &Client, name: &str, tenant: TenantId) -> Result<()> {
    let t = tenant.0;
    let placed: Option<Uuid> = control
        .query_opt(
            "SELECT p.tenant_id FROM tenant_placements p JOIN databases d ON d.id = p.database_id \
             WHERE d.name = $1 AND p.tenant_id <> $2 LIMIT 1",
            &[&name, &t],
        )
        .await
        .map_err(fail("reading the registry"))?
        .map(|r| r.get(0));
    let holds: Option<Uuid> = dedicated
        .query_opt(
            // The owner sees every tenant row (tenants_owner_read); the rows of a tenant's other
            // tables come and go with it.
            "SELECT id FROM tenants WHERE id <> $1 LIMIT 1",
            &[&t],
        )
        .await
        .map_err(fail("reading the dedicated database"))?
        .map(|r| r.get(0));
    match placed.or(holds) {
        Some(other) => Err(crate::Error::Migration(format!(
            "the dedicated database already holds tenant {other}: a dedicated database holds one tenant; choose another"
        ))),
        None => Ok(()),
    }
}

/// Installs the key with which the control database signs grants for dedicated database `db`
/// (`migrations/0006_signed_copies.sql`): in the control database's `database_keys` (made once,
/// 32 random bytes) and as `dedicated`'s `copy_key`. Run as the owner of both, by
/// `scripts/tenant.sh` when it registers a database and by `scripts/migrate.sh` for each one
/// (so that databases registered before keys existed get theirs). Refuses a database that
/// registers others: the control database must never hold a copy key.
pub async fn install_key(control: &Client, dedicated: &Client, db: Uuid) -> Result<()> {
    let registers: bool = dedicated
        .query_one("SELECT EXISTS (SELECT 1 FROM databases)", &[])
        .await
        .map_err(fail("reading the dedicated database"))?
        .get(0);
    if registers {
        return Err(crate::Error::Migration(
            "the database to install a copy key in registers dedicated databases: it is a control database".into(),
        ));
    }
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| crate::Error::Migration(format!("no random bytes: {e}")))?;
    let key: Vec<u8> = control
        .query_one(
            "WITH made AS (INSERT INTO database_keys (database_id, key) VALUES ($1, $2) \
                           ON CONFLICT (database_id) DO NOTHING RETURNING key) \
             SELECT key FROM made UNION ALL SELECT key FROM database_keys WHERE database_id = $1",
            &[&db, &fresh.as_slice()],
        )
        .await
        .map_err(fail("installing the dedicated database's key"))?
        .get(0);
    dedicated
        .execute(
            "INSERT INTO copy_key (only_row, key) VALUES (true, $1) ON CONFLICT (only_row) DO UPDATE SET key = excluded.key",
            &[&key],
        )
        .await
        .map_err(fail("installing the key in the dedicated database"))?;
    Ok(())
}
