//! Every native connection's TLS configuration (reqwest is handed it whole): the crypto
//! provider, the certificate verifier and, for pinned hosts, the pin check (`pinning.rs`).
//!
//! The provider is the app's process-wide one if it installed one (say aws-lc-rs with rustls'
//! `prefer-post-quantum`, for post-quantum key exchange), else ring, which SessionKit bundles on
//! desktops and, with `mobile-crypto`, in mobile apps (see ARCHITECTURE.md for why ring and what
//! it costs). Certificates are checked by the platform's verifier, or against the configured
//! roots only.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::pinning::{HostPins, PinningVerifier};
use crate::http::TransportError;

/// The rustls client configuration of every SessionKit connection: the app's process-wide
/// crypto provider if it installed one, else the bundled one; the platform's verifier, or only
/// `roots_pem` when given; and `pins` checked on top of that validation.
pub(crate) fn client_config(roots_pem: &[Vec<u8>], pins: &[HostPins]) -> Result<rustls::ClientConfig, TransportError> {
    let provider = rustls::crypto::CryptoProvider::get_default().cloned().or_else(default_provider).ok_or(
        TransportError::Setup("no TLS crypto provider (on mobile, enable the `mobile-crypto` feature or install one)"),
    )?;
    let roots: Vec<CertificateDer<'static>> =
        roots_pem.iter().map(|pem| pem_certificates(pem)).collect::<Result<Vec<_>, _>>()?.concat();
    let inner: Arc<dyn ServerCertVerifier> = if roots.is_empty() {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|_| TransportError::Setup("the platform certificate verifier is unavailable"))?,
        )
    } else {
        let mut store = rustls::RootCertStore::empty();
        for der in &roots {
            store.add(der.clone()).map_err(|_| TransportError::Setup("bad root certificate"))?;
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(|_| TransportError::Setup("bad root certificate"))?
    };
    let verifier: Arc<dyn ServerCertVerifier> = if pins.is_empty() {
        inner
    } else {
        Arc::new(PinningVerifier::new(inner, pins, roots, provider.signature_verification_algorithms.all)?)
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| TransportError::Setup("TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // What reqwest offers on its own configurations without HTTP/2 (which SessionKit does not
    // enable): a server that insists on ALPN still finds a protocol.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// ring, bundled on desktops and in mobile apps built with `mobile-crypto`.
#[cfg(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto"))]
fn default_provider() -> Option<Arc<rustls::crypto::CryptoProvider>> {
    Some(Arc::new(rustls::crypto::ring::default_provider()))
}

/// The mobile cross-check bundles no crypto: the app must install a provider.
#[cfg(not(any(not(any(target_os = "android", target_os = "ios")), feature = "mobile-crypto")))]
fn default_provider() -> Option<Arc<rustls::crypto::CryptoProvider>> {
    None
}

/// The DER certificates in a PEM bundle: at least one. An entry with none (empty, DER, a key)
/// is an error, never a reason to fall back to the platform's roots.
fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TransportError::Setup("bad root certificate"))?;
    if certificates.is_empty() {
        return Err(TransportError::Setup("a trusted root holds no PEM certificate"));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roots that hold no certificate must not widen trust to the platform's roots.
    #[test]
    fn roots_without_a_certificate_are_refused() {
        for roots in [&b""[..], b"not pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
            let refused = client_config(&[roots.to_vec()], &[]).expect_err("refused");
            assert!(matches!(refused, TransportError::Setup(_)), "{refused}");
        }
        let config = client_config(&[], &[]).expect("the platform's verifier");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
