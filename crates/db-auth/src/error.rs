pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong making a token. No variant ever contains a credential or a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no AWS region: set AWS_REGION (IAM tokens are signed for a region)")]
    NoRegion,
    #[error("AWS credentials: {0}")]
    Credentials(String),
    #[error("invalid token request: {0}")]
    Request(String),
    #[error("signing failed: {0}")]
    Signing(String),
}
