//! TLS to the database with rustls: the certificate chain and the host name are verified
//! (what libpq calls `sslmode=verify-full`) against the Amazon RDS root CAs compiled into the
//! binary, or against a CA file named in config.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::{CaSource, Error, Result};

/// The Amazon RDS root certificate authorities (see `certs/README.md`).
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// Amazon Trust Services' roots, which Aurora DSQL's certificates chain to (see
/// `certs/README.md`).
pub const AMAZON_ROOT_CAS: &[u8] = include_bytes!("../certs/amazon-root-cas.pem");

/// Builds the client configuration once; every connection reuses it.
pub fn client_config(ca: &CaSource) -> Result<Arc<ClientConfig>> {
    let pem: std::borrow::Cow<'_, [u8]> = match ca {
        CaSource::RdsBundle => RDS_CA_BUNDLE.into(),
        CaSource::AmazonRoots => AMAZON_ROOT_CAS.into(),
        CaSource::Pem(bytes) => bytes.as_slice().into(),
        CaSource::File(path) => std::fs::read(path)
            .map_err(|e| Error::Config { var: "DB_CA_FILE", problem: format!("cannot read {}: {e}", path.display()) })?
            .into(),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("CA bundle is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| Error::Tls(format!("CA certificate rejected: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls("the CA bundle holds no certificates".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Says in words why a TLS handshake failed, from the rustls error inside a connect error:
/// "certificate signed by an unknown authority", "certificate is for another host", ...
pub fn explain(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(describe(tls));
        }
        cur = e.source();
    }
    None
}

fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server certificate is not signed by a trusted CA (unknown issuer)".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the server certificate is not valid for this host name".into()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(C::BadSignature) => {
            "the server certificate is not signed by a trusted CA (bad signature)".into()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}
