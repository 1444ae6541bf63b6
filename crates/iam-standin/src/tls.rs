//! The stand-in's TLS: a CA generated at start, and the server certificate it issues.

use std::sync::Arc;

use rustls::{ServerConfig, pki_types::PrivateKeyDer};

use crate::error::Error;

/// A CA, and a server certificate for `hostname` that it issued.
pub(crate) fn make_tls(hostname: &str) -> Result<(String, Arc<ServerConfig>), Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // A name of its own for each CA, as real CAs have: clients tell them apart by name first.
    let id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(ca_key.public_key_pem())[..6]);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("iam-standin test CA {id}"));
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate()?;
    let mut leaf_params = rcgen::CertificateParams::new(vec![hostname.to_string()])?;
    leaf_params.distinguished_name.push(rcgen::DnType::CommonName, hostname);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))?;
    Ok((ca_cert.pem(), Arc::new(config)))
}
