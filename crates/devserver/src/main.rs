//! `devserver`: the API on your machine.
//!
//! - `devserver serve` (the default): the same `api::App` as on Lambda, behind hyper, with the
//!   caller taken from a verified `Authorization: Bearer` JWT (HS256, `DEV_JWT_SECRET`).
//! - `devserver token --sub alice`: mints such a token.
//! - `devserver migrate [--bootstrap-roles] [--rds-iam]`: applies the migrations.
//! - `devserver tenant list | move <id> --to dedicated|pooled`: silo tenants' placements.
//!
//! Settings come from `.env` (if present) and then the environment, which wins.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Run the tenant API locally, mint dev tokens, apply migrations")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (default).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:3000")]
        bind: SocketAddr,
    },
    /// Print a bearer token signed with DEV_JWT_SECRET.
    Token {
        /// The user's subject (`sub` claim).
        #[arg(long)]
        sub: String,
        #[arg(long)]
        email: Option<String>,
        /// Mark the email as verified (`email_verified: true`), as an identity provider does
        /// once the user proved they own it: needed to accept an invitation bound to an email.
        #[arg(long, requires = "email")]
        email_verified: bool,
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 12 * 3600)]
        ttl: u64,
    },
    /// Apply the migrations (as the owner role, or an admin with --bootstrap-roles).
    Migrate {
        /// First create the roles app_owner and app_runtime (needs an admin login).
        #[arg(long)]
        bootstrap_roles: bool,
        /// With --bootstrap-roles: GRANT rds_iam to both roles (Aurora / RDS).
        #[arg(long, requires = "bootstrap_roles")]
        rds_iam: bool,
        /// Only create this database (if missing) and exit; connect to a maintenance database
        /// such as `postgres` for this.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["bootstrap_roles", "rds_iam"])]
        create_database: Option<String>,
    },
    /// Tenants: list them with their placements, set a tenant's plan, or move a tenant to a
    /// dedicated database and back.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
}

#[derive(Subcommand)]
enum TenantAction {
    /// Every tenant and where its todos live.
    List,
    /// Set a tenant's plan (a name from PLANS, or a built-in plan: free, standard, premium).
    Plan {
        /// The tenant's id.
        tenant: String,
        /// The plan's name.
        plan: String,
    },
    /// Move a tenant: writes get 503 for the few moments of the move, reads go on.
    Move {
        /// The tenant's id.
        tenant: String,
        #[arg(long, value_enum)]
        to: devserver::tenants::To,
        /// The dedicated database, as its owner: postgres://app_owner@host/db?sslmode=verify-full
        /// (without it: a new database in the control database's cluster).
        #[arg(long, env = "TENANT_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Copy and check, then leave the tenant where it is.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // .env first; variables already in the environment win (dotenvy never overrides them).
    let _ = dotenvy::dotenv();
    devserver::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve { bind: default_bind() }) {
        Command::Serve { bind } => devserver::serve(bind).await,
        Command::Token { sub, email, email_verified, name, ttl } => {
            devserver::print_token(&sub, email.as_deref(), email_verified, name.as_deref(), ttl)
        }
        Command::Migrate { bootstrap_roles, rds_iam, create_database } => match create_database {
            Some(name) => devserver::create_database(&name).await,
            None => devserver::migrate(bootstrap_roles, rds_iam).await,
        },
        Command::Tenant { action: TenantAction::List } => devserver::tenants::list().await,
        Command::Tenant { action: TenantAction::Plan { tenant, plan } } => {
            devserver::tenants::set_plan(&tenant, &plan).await
        }
        Command::Tenant { action: TenantAction::Move { tenant, to, database_url, dry_run } } => {
            devserver::tenants::move_tenant(&tenant, to, database_url.as_deref(), dry_run).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_bind() -> SocketAddr {
    std::env::var("BIND_ADDR")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)))
}
