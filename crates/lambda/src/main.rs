//! `bootstrap`: the Lambda function. Init once (logging, configuration, credentials, the
//! pool), then serve API Gateway events one at a time on a single-threaded runtime: a Lambda
//! instance never has two requests at once, and one thread starts faster and uses less memory.

// The runtime's future types nest deeper than the compiler's default query depth.
#![recursion_limit = "256"]

use std::{process::ExitCode, sync::Arc};

use lambda::{
    event::ApiResponse,
    invocation::{Invocation, Output},
};
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let logging = lambda::init_tracing(env("LOG_LEVEL").as_deref());
    match logging.and(lambda::AppFunction::from_env(&env)) {
        Ok(lambda::AppFunction::Api) => serve_api().await,
        Ok(lambda::AppFunction::Migrate) => serve_migrations().await,
        Err(e) => {
            lambda::report_init_error(&e).await;
            ExitCode::FAILURE
        }
    }
}

fn exit(served: Result<(), Error>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the runtime loop ended");
            ExitCode::FAILURE
        }
    }
}

/// The API function: API Gateway events in, proxy responses out.
async fn serve_api() -> ExitCode {
    let function = match lambda::Function::from_env(&env).await {
        Ok(f) => Arc::new(f),
        Err(e) => {
            lambda::report_init_error(&e).await;
            return ExitCode::FAILURE;
        }
    };
    exit(
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Invocation>| {
            let function = function.clone();
            async move {
                match event.payload {
                    Invocation::Api(api) => {
                        let (origin, request) = api.into_request(event.context);
                        Ok::<_, Error>(Output::Api(ApiResponse::new(origin, function.handle(request).await)))
                    }
                    Invocation::Cleanup => Ok(Output::Cleanup(function.cleanup().await?)),
                }
            }
        }))
        .await,
    )
}

/// The migration function: `{"action":"migrate"}` in, what it applied out; a failed migration
/// fails the invocation with its name and the database's message.
async fn serve_migrations() -> ExitCode {
    let migrator = match lambda::Migrator::from_env(&env).await {
        Ok(m) => Arc::new(m),
        Err(e) => {
            lambda::report_init_error(&e).await;
            return ExitCode::FAILURE;
        }
    };
    exit(
        lambda_runtime::run(service_fn(move |event: LambdaEvent<lambda::MigrateEvent>| {
            let migrator = migrator.clone();
            async move { migrator.run(event.payload).await.map_err(Error::from) }
        }))
        .await,
    )
}
