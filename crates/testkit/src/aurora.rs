//! Test clusters shaped like Aurora: the roles of `scripts/local-aurora-roles.sql`, made by the
//! cluster's superuser (`rdsadmin`), so that the administrator the tests use (`postgres`, see
//! [`crate::pg::Server::master`]) is no superuser, as Aurora's master user is not; and DSQL's
//! `admin` for the DSQL tests.

use tokio_postgres::Client;

use crate::server::{MASTER_USER, Server, TestDb};

/// The Aurora-shaped roles (`scripts/local-aurora-roles.sql`), made by a test cluster's
/// superuser, and the master user's password. Safe to run again and from several processes at
/// once (the advisory lock).
async fn make_aurora_roles(superuser: &Client, password: &str) -> Result<(), tokio_postgres::Error> {
    superuser.execute("SELECT pg_advisory_lock(8675310)", &[]).await?;
    let made = async {
        superuser.batch_execute(LOCAL_AURORA_ROLES_SQL).await?;
        superuser.batch_execute(&format!("ALTER ROLE {MASTER_USER} PASSWORD '{password}'")).await
    }
    .await;
    superuser.execute("SELECT pg_advisory_unlock(8675310)", &[]).await?;
    made
}

/// The roles of an Aurora cluster, for a local one.
const LOCAL_AURORA_ROLES_SQL: &str = include_str!("../../../scripts/local-aurora-roles.sql");

/// The master user's password on a server given by `TEST_DATABASE_URL` (ours get a random one).
pub(crate) const EXTERNAL_MASTER_PASSWORD: &str = "master-test-password";

/// Makes the Aurora-shaped roles on `server` (on a runtime of its own: this runs once, from
/// whichever thread first asks for the server).
pub(crate) fn make_roles(server: &Server) -> Server {
    let url = server.url("postgres");
    let password = server.master_password.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let (client, conn) = crate::server::connect_raw(&url).await;
            let conn = tokio::spawn(conn);
            make_aurora_roles(&client, &password).await.expect("making the Aurora-shaped roles");
            drop(client);
            let _ = conn.await;
        })
    })
    .join()
    .expect("making the Aurora-shaped roles");
    server.clone()
}

/// Makes the login role `admin` on `db`'s server, as Aurora DSQL's built-in administrator (who
/// creates roles and maps IAM identities to them): no PostgreSQL superuser (made by the Aurora-shaped administrator), and able to act as the owner
/// of the local DSQL schema, which belongs to `app_owner` here (on DSQL, `admin` owns what it
/// creates). Safe to call from tests running at once.
pub async fn dsql_admin(db: &TestDb) {
    let master = db.master().await;
    master.execute("SELECT pg_advisory_lock(8675311)", &[]).await.unwrap();
    let made = master
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'admin') THEN \
             CREATE ROLE admin LOGIN CREATEROLE; END IF; END $$; GRANT app_owner TO admin",
        )
        .await;
    master.execute("SELECT pg_advisory_unlock(8675311)", &[]).await.unwrap();
    made.expect("making DSQL's admin role");
}
