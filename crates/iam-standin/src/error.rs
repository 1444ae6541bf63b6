//! Why a stand-in could not start.

/// Why [`crate::Standin::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
