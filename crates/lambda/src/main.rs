//! `bootstrap`: the Lambda function. Init once (logging, configuration, credentials, the
//! pool), then serve API Gateway events one at a time on a single-threaded runtime: a Lambda
//! instance never has two requests at once, and one thread starts faster and uses less memory.

// The runtime's future types nest deeper than the compiler's default query depth.
#![recursion_limit = "256"]

use std::{process::ExitCode, sync::Arc};

use lambda::event::{ApiEvent, ApiResponse};
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let logging = lambda::init_tracing(env("LOG_LEVEL").as_deref());
    let function = match logging.and(lambda::Function::from_env(&env).await) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            lambda::report_init_error(&e).await;
            return ExitCode::FAILURE;
        }
    };
    let served = lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiEvent>| {
        let function = function.clone();
        async move {
            let (origin, request) = event.payload.into_request(event.context);
            Ok::<_, Error>(ApiResponse::new(origin, function.handle(request).await))
        }
    }))
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the runtime loop ended");
            ExitCode::FAILURE
        }
    }
}
