//! `db-token`: prints an IAM database auth token for scripts (`scripts/psql.sh`,
//! `scripts/migrate.sh`), signed with the default AWS credential chain (environment variables,
//! then the shared config and credentials files). The token is the only thing on stdout.

use std::process::ExitCode;

use clap::Parser;
use db_auth::{TokenCache, TokenRequest};

#[derive(Parser)]
#[command(version, about = "Print an IAM auth token for Aurora/RDS PostgreSQL or Aurora DSQL")]
struct Args {
    /// The database host name (the cluster endpoint).
    #[arg(long, env = "DB_HOST")]
    host: String,
    /// The database port (RDS tokens only).
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    port: u16,
    /// The database user (RDS tokens only).
    #[arg(long, env = "DB_USER", required_unless_present = "dsql")]
    user: Option<String>,
    /// The AWS region of the database (default: AWS_REGION or the profile's region).
    #[arg(long)]
    region: Option<String>,
    /// An Aurora DSQL token (`DbConnect`) instead of an RDS token.
    #[arg(long)]
    dsql: bool,
    /// With --dsql: `DbConnectAdmin`, for the `admin` role.
    #[arg(long, requires = "dsql")]
    admin: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = async {
        let (provider, region) = db_auth::default_credentials(args.region).await?;
        let req = if args.dsql {
            TokenRequest::dsql(args.host, region, args.admin)
        } else {
            TokenRequest::rds(args.host, args.port, args.user.unwrap_or_default(), region)
        };
        TokenCache::new(provider).token(&req).await
    }
    .await;
    match result {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("db-token: {e}");
            ExitCode::FAILURE
        }
    }
}
