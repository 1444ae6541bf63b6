//! `devserver tenant list | move`: the operator's view of tenant placements (silo tenants), as
//! the owner role (or, locally, the dev database's superuser). See `store::placement::{mover, registry}`.

use store::{
    DbConfig, Store, TenantId,
    placement::{
        Database,
        mover::{self, Direction, Ends, Options},
        registry,
    },
};

use crate::BoxError;

/// Prints every tenant and where its todos live.
pub async fn list() -> Result<(), BoxError> {
    let (_, cfg) = crate::migration_config()?;
    let control = Store::from_config(cfg).await?.connect_client().await?;
    println!("{:<36}  {:<24}  name", "tenant", "placement");
    for (id, name, placement) in registry::list(&control).await? {
        println!("{id:<36}  {:<24}  {name}", placement.as_deref().unwrap_or("pooled"));
    }
    Ok(())
}

/// Sets `tenant`'s plan to `plan`, a plan of the catalogue in `PLANS` (the built-in one when
/// unset): in the control database and, for a dedicated tenant, in its database too.
pub async fn set_plan(tenant: &str, plan: &str) -> Result<(), BoxError> {
    let id = TenantId::parse(tenant).map_err(|_| format!("{tenant} is not a tenant id (a UUID)"))?;
    let plans = limits::Plans::from_env().map_err(|e| format!("PLANS: {e}"))?;
    if plans.get(plan).is_none() {
        let known: Vec<_> = plans.iter().map(|p| p.name().to_string()).collect();
        return Err(format!("{plan} is not a plan of this deployment (PLANS): {}", known.join(", ")).into());
    }
    let (_, cfg) = crate::migration_config()?;
    let engine = cfg.engine;
    let mut control = Store::from_config(cfg.clone()).await?.connect_client().await?;
    let placed = match engine {
        store::Engine::Postgres => registry::placement_of(&control, id).await?,
        store::Engine::Dsql => None,
    };
    let Some(before) = store::quota::set_plan(&mut control, engine, id, plan).await? else {
        return Err(format!("no tenant {id}").into());
    };
    if let Some((name, db)) = placed {
        let mut dedicated = Store::from_config(db.login(&cfg)).await?.connect_client().await?;
        store::quota::set_plan(&mut dedicated, engine, id, plan)
            .await?
            .ok_or_else(|| format!("tenant {id} has no row in its database {name}"))?;
    }
    let default = plans.default_plan().name().to_string();
    println!("tenant {id}: plan {} -> {plan}", before.unwrap_or(default));
    Ok(())
}

/// Where to put a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
    Dedicated,
    Pooled,
}

/// Moves `tenant` to a dedicated database (the one at `url`, or a new one in the control
/// database's cluster) or back to the pooled one.
pub async fn move_tenant(tenant: &str, to: To, url: Option<&str>, dry_run: bool) -> Result<(), BoxError> {
    let tenant = TenantId::parse(tenant).map_err(|_| format!("{tenant} is not a tenant id (a UUID)"))?;
    let (describe, cfg) = crate::migration_config()?;
    let control = Store::from_config(cfg.clone()).await?.connect_client().await?;
    let placed = registry::placement_of(&control, tenant).await?;
    // The dedicated database: its owner login (`url`, or the control login pointed at it) and
    // its entry in the registry.
    let mut created = false;
    let (owner_cfg, name, db) = match (to, placed, url) {
        (To::Pooled, None, _) => return Err("the tenant is pooled already".into()),
        (To::Pooled, Some((name, db)), url) => {
            let owner = match url {
                Some(url) => DbConfig::from_url(url)?,
                None => db.login(&cfg),
            };
            (owner, name, db)
        }
        (To::Dedicated, _, Some(url)) => {
            let owner = DbConfig::from_url(url)?;
            let name = format!("{}-{}", owner.host.split('.').next().unwrap_or("db"), owner.dbname).to_lowercase();
            let db = descriptor(&owner, &cfg);
            (owner, name, db)
        }
        (To::Dedicated, _, None) => {
            // A new database in the same cluster, with the roles' grants and the schema, named
            // from the whole tenant id (ids can be chosen by clients: a prefix could be shared).
            let dbname = format!("tenant_{}", tenant.0.simple());
            created = crate::create_database_on(&control, &describe, &dbname).await?;
            let mut owner = cfg.clone();
            owner.dbname = dbname.clone();
            let db = descriptor(&owner, &cfg);
            (owner, dbname.replace('_', "-"), db)
        }
    };
    let dedicated = Store::from_config(owner_cfg.clone()).await?.connect_client().await?;
    if to == To::Dedicated {
        // Bring its schema to the control database's (a no-op when it is there).
        if created {
            // The roles are the cluster's; this gives them their grants in the new database.
            store::migrate::bootstrap_roles(&dedicated, false).await?;
        }
        for applied in store::migrate::run_for(&dedicated, store::Engine::Postgres).await? {
            println!("{}: applied {applied}", owner_cfg.describe());
        }
    }
    let db_id = match to {
        To::Dedicated => {
            registry::refuse_shared(&control, &dedicated, &name, tenant).await?;
            let id = registry::register(&control, &name, &db).await?;
            registry::install_key(&control, &dedicated, id).await?;
            id
        }
        To::Pooled => db.id,
    };
    let direction = match to {
        To::Dedicated => Direction::ToDedicated,
        To::Pooled => Direction::ToPooled,
    };
    // The API's placement cache, which a move back to pooled must outlast (docs/silo.md).
    let opts = Options {
        stop_before_switch: dry_run,
        cache_ttl: store::placement_cache_ttl(crate::env)?,
        ..Options::default()
    };
    let report =
        mover::move_tenant(&Ends { control: &control, dedicated: &dedicated, db: db_id }, tenant, direction, &opts)
            .await?;
    let what = if dry_run { "copied and checked (dry run: not moved)" } else { "moved" };
    println!(
        "tenant {}: {what} to {} ({} todos, {} idempotency records, md5 {})",
        tenant.0,
        if to == To::Dedicated { name.as_str() } else { "pooled" },
        report.todos,
        report.records,
        report.checksum
    );
    Ok(())
}

/// The registry entry of the database `owner` logs in to: the API's runtime role there, with
/// the control database's kind of login and TLS.
fn descriptor(owner: &DbConfig, control: &DbConfig) -> Database {
    Database {
        id: uuid::Uuid::nil(),
        host: owner.host.clone(),
        hostaddr: owner.hostaddr,
        port: owner.port,
        dbname: owner.dbname.clone(),
        user: "app_runtime".into(),
        auth: if control.auth.is_token() { "iam" } else { "password" }.into(),
        tls: if matches!(control.tls, store::TlsMode::Disable) { "disable" } else { "verify-full" }.into(),
    }
}

/// Applies the migrations to every dedicated database in the registry of `control`, with the
/// same login pointed at each: reports each, goes on past a failing one, and fails at the end if
/// any did (run it again).
pub async fn migrate_dedicated(control: &tokio_postgres::Client) -> Result<(), BoxError> {
    let (_, cfg) = crate::migration_config()?;
    let mut failed = Vec::new();
    for (name, db) in registry::databases(control).await? {
        let result = async {
            let owner = db.login(&cfg);
            let describe = owner.describe();
            let client = Store::from_config(owner).await?.connect_client().await?;
            let applied = store::migrate::run_for(&client, store::Engine::Postgres).await?;
            // Databases registered before grants were signed get their key here.
            registry::install_key(control, &client, db.id).await?;
            Ok::<_, BoxError>((describe, applied))
        }
        .await;
        match result {
            Ok((describe, applied)) if applied.is_empty() => {
                println!("{describe} ({name}): up to date, nothing to apply")
            }
            Ok((describe, applied)) => {
                for m in applied {
                    println!("{describe} ({name}): applied {m}");
                }
            }
            Err(e) => {
                eprintln!("dedicated database {name}: FAILED: {e}");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("the migrations failed on {} (the others are done; run again)", failed.join(", ")).into())
    }
}
