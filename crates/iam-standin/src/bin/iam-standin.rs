//! `iam-standin`: run the stand-in for Aurora's IAM authentication in front of a local
//! PostgreSQL, to try the IAM path (`DB_AUTH=iam`) on your machine.
//!
//! ```text
//! iam-standin --upstream /tmp/pgsock/.s.PGSQL.5432 --ca-out /tmp/standin-ca.pem
//! ```
//! then point the API at it with `DB_HOST=<--hostname> DB_HOSTADDR=127.0.0.1 DB_PORT=<port>
//! DB_AUTH=iam DB_CA_FILE=/tmp/standin-ca.pem` and the printed test credentials.
//! With `--dsql` it stands in for Aurora DSQL instead (`DB_AUTH=dsql`, `scripts/dev.sh --dsql`),
//! refusing what DSQL refuses.
//! `kill -USR1` drops every established session; Ctrl-C stops.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use iam_standin::{Config, Standin, Upstream};

#[derive(Parser)]
#[command(version, about = "A local stand-in for Aurora PostgreSQL's IAM authentication")]
struct Args {
    /// Where to listen (loopback only by design).
    #[arg(long, default_value = "127.0.0.1:5433")]
    listen: SocketAddr,
    /// The host name in the certificate, which tokens must be signed for.
    #[arg(long, default_value = "aurora.standin.internal")]
    hostname: String,
    /// The port tokens must be signed for (default: the listening port).
    #[arg(long)]
    token_port: Option<u16>,
    #[arg(long, default_value = "eu-west-1")]
    region: String,
    /// The real PostgreSQL: `host:port`, or the path of its Unix socket file. It must trust
    /// the stand-in (no password).
    #[arg(long)]
    upstream: String,
    /// Write the stand-in's CA certificate (PEM) here, for clients to trust.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Wait this long before answering each new connection.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Behave as Aurora DSQL: accept `dsql` tokens (`DbConnect` for custom roles,
    /// `DbConnectAdmin` for `admin`) instead of RDS ones, and keep DSQL's SQL rules and limits
    /// (`iam_standin::dsql`; the database needs `sql/dsql-sys.sql`, installed by its superuser).
    #[arg(long)]
    dsql: bool,
    /// Close sessions older than this many seconds (with --dsql: 3600, as DSQL does).
    #[arg(long)]
    max_session_age_secs: Option<f64>,
    /// Fail this share of commits (0 to 1) with SQLSTATE 40001 / OC000, as DSQL's optimistic
    /// concurrency does under contention.
    #[arg(long, default_value_t = 0.0)]
    commit_failure_rate: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("info")).try_init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("iam-standin: refusing to listen on {}: loopback addresses only", args.listen);
        return ExitCode::FAILURE;
    }
    let upstream = match args.upstream.parse::<SocketAddr>() {
        Ok(addr) => Upstream::Tcp(addr),
        Err(_) => Upstream::Unix(PathBuf::from(&args.upstream)),
    };
    let mut config = if args.dsql {
        Config::dsql(args.hostname.clone(), args.region.clone(), upstream)
    } else {
        Config::new(args.hostname.clone(), args.region.clone(), upstream)
    };
    config.listen = args.listen;
    config.token_port = args.token_port;
    if let Some(age) = args.max_session_age_secs.filter(|s| s.is_finite() && *s > 0.0) {
        config.max_session_age = Some(Duration::from_secs_f64(age));
    }
    let standin = match Standin::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iam-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    standin.set_delay(Duration::from_millis(args.delay_ms));
    standin.set_commit_failure_rate(args.commit_failure_rate);
    if let Some(path) = &args.ca_out
        && let Err(e) = std::fs::write(path, standin.ca_pem())
    {
        eprintln!("iam-standin: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!(
        "iam-standin listening on {} as {} (region {})\n  sign tokens with AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}\n  CA: {}",
        standin.addr(),
        args.hostname,
        args.region,
        iam_standin::TEST_ACCESS_KEY_ID,
        iam_standin::TEST_SECRET_ACCESS_KEY,
        args.ca_out.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(not written; use --ca-out)".into()),
    );
    let mut usr1 = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iam-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                standin.drop_sessions();
                println!("dropped every session (accepted logins so far: {})", standin.accepted_logins());
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    ExitCode::SUCCESS
}
