//! An HTTP client for aws-config that makes no requests: every call fails at once with a message
//! that says why. aws-config needs some client to build its default chain; the providers that
//! would use it (IMDS, ECS, SSO, web identity) then fail cleanly instead of panicking, and the
//! ones that need no network (environment, profile file, credential_process) work.

use aws_smithy_runtime_api::client::{
    http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector},
    orchestrator::HttpRequest,
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};

#[derive(Debug, Clone, Copy)]
pub(crate) struct NoNetwork;

impl HttpConnector for NoNetwork {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let message = format!(
            "db-auth makes no network calls (to {}): provide credentials in the environment, the shared \
             credentials file or credential_process",
            request.uri()
        );
        HttpConnectorFuture::ready(Err(ConnectorError::other(message.into(), None)))
    }
}

impl HttpClient for NoNetwork {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(*self)
    }
}
