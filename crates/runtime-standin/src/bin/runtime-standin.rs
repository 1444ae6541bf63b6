//! `runtime-standin`: try the function locally without AWS. Runs a Lambda Runtime API on
//! loopback, starts the function process with `AWS_LAMBDA_RUNTIME_API` pointing at it (and the
//! other variables Lambda sets; the rest of your environment, such as `DB_*`, passes through),
//! feeds it API Gateway events from files, and prints each answer.
//!
//! ```text
//! cargo build -p lambda
//! IDENTITY_SOURCES=apigw_jwt DATABASE_URL=postgres://... cargo run -p runtime-standin -- \
//!     --event crates/lambda/tests/data/apigw-v2-jwt.json -- target/debug/bootstrap
//! ```

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use runtime_standin::{Outcome, RuntimeApi};

#[derive(Parser)]
#[command(about = "Run a Lambda function process against a local Runtime API and invoke it with events")]
struct Args {
    /// An event (JSON file) to invoke the function with; repeat for more, in order.
    #[arg(long = "event", required = true)]
    events: Vec<PathBuf>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The function's command line, e.g. `target/debug/bootstrap`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = RuntimeApi::start().await;
    let mut child = match std::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .env("AWS_LAMBDA_RUNTIME_API", runtime.endpoint())
        .env("AWS_LAMBDA_FUNCTION_NAME", "tenant-api")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runtime-standin: cannot start {}: {e}", args.command[0]);
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for path in &args.events {
        let event = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("runtime-standin: {}: {e}", path.display());
                ok = false;
                break;
            }
        };
        let answer = tokio::select! {
            a = runtime.call(event, Duration::from_secs(args.timeout)) => a,
            e = runtime.init_error(Duration::from_secs(args.timeout)) => e.map(|body| Outcome::Error { error_type: Some("init".into()), body }),
        };
        match answer {
            Some(Outcome::Response(r)) => {
                println!("{}: {}", path.display(), serde_json::to_string_pretty(&r).unwrap_or_default())
            }
            Some(Outcome::Error { error_type, body }) => {
                println!("{}: error {}: {body}", path.display(), error_type.unwrap_or_default());
                ok = false;
            }
            None => {
                println!("{}: no answer within {} s", path.display(), args.timeout);
                ok = false;
            }
        }
        if !ok {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
