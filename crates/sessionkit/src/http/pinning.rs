//! Optional public-key pinning (SPKI) for the app's own hosts, with backup pins
//! (MASVS-NETWORK-2).
//!
//! A pin is the SHA-256 of a certificate's SubjectPublicKeyInfo, base64-encoded, as in HPKP
//! (`sha256/` prefix optional). For a pinned host the ordinary certificate validation runs first
//! (platform verifier, or the configured roots), and then at least one certificate of the
//! presented chain must carry a pinned key: pin the current key and at least one backup key,
//! or a key rotation locks your users out. Hosts without pins are validated as usual.
//! Native only: in the browser, fetch owns TLS.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::http::TransportError;

/// The message a pin mismatch carries through rustls, recognised by the transport's error mapping.
pub(crate) const PIN_MISMATCH: &str = "the server's certificate chain matches none of the pinned public keys";

/// The pins of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPins {
    /// The host name or IP literal, as in the URL.
    pub host: String,
    /// Base64 SHA-256 SPKI hashes (`sha256/` prefix optional); two or more, one a backup.
    pub pins: Vec<String>,
}

#[derive(Debug)]
struct Pinned {
    host: String,
    hashes: Vec<[u8; 32]>,
}

/// Wraps a certificate verifier and adds the pin check for pinned hosts.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<Pinned>,
}

fn spki_hash(certificate: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(certificate).ok()?;
    Some(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
}

impl PinningVerifier {
    pub(crate) fn new(inner: Arc<dyn ServerCertVerifier>, pins: &[HostPins]) -> Result<Self, TransportError> {
        let mut pinned = Vec::new();
        for host in pins {
            let mut hashes = Vec::new();
            for pin in &host.pins {
                let encoded = pin.strip_prefix("sha256/").unwrap_or(pin);
                let bytes = STANDARD.decode(encoded).map_err(|_| TransportError::Setup("a pin is not base64"))?;
                hashes.push(
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| TransportError::Setup("a pin is not a SHA-256"))?,
                );
            }
            if hashes.is_empty() {
                return Err(TransportError::Setup("a pinned host needs at least one pin"));
            }
            pinned.push(Pinned { host: host.host.to_ascii_lowercase(), hashes });
        }
        Ok(Self { inner, pinned })
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let name = server_name.to_str();
        let Some(pinned) = self.pinned.iter().find(|p| p.host.trim_start_matches('[').trim_end_matches(']') == name)
        else {
            return Ok(verified);
        };
        let chain = std::iter::once(end_entity).chain(intermediates);
        if chain.filter_map(spki_hash).any(|hash| pinned.hashes.contains(&hash)) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(PIN_MISMATCH.into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A rustls client configuration whose verifier checks `pins` on top of the usual validation
/// (the platform's verifier, or only `roots_pem` when given).
pub(crate) fn client_config(roots_pem: &[Vec<u8>], pins: &[HostPins]) -> Result<rustls::ClientConfig, TransportError> {
    let provider = rustls::crypto::CryptoProvider::get_default().cloned().or_else(default_provider).ok_or(
        TransportError::Setup("no TLS crypto provider (on mobile, enable the `mobile-crypto` feature or install one)"),
    )?;
    let inner: Arc<dyn ServerCertVerifier> = if roots_pem.is_empty() {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|_| TransportError::Setup("the platform certificate verifier is unavailable"))?,
        )
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for pem in roots_pem {
            for der in pem_certificates(pem)? {
                roots.add(der).map_err(|_| TransportError::Setup("bad root certificate"))?;
            }
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|_| TransportError::Setup("bad root certificate"))?
    };
    let verifier = PinningVerifier::new(inner, pins)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| TransportError::Setup("TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(not(any(target_os = "android", target_os = "ios")))]
fn default_provider() -> Option<Arc<rustls::crypto::CryptoProvider>> {
    Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

#[cfg(any(target_os = "android", target_os = "ios"))]
fn default_provider() -> Option<Arc<rustls::crypto::CryptoProvider>> {
    None
}

/// The DER certificates in a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TransportError::Setup("bad root certificate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(pins: &[&str]) -> Vec<HostPins> {
        vec![HostPins { host: "api.example".into(), pins: pins.iter().map(|p| (*p).to_owned()).collect() }]
    }

    #[test]
    fn pin_sets_are_validated() {
        let inner = platform_verifier();
        let good = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        assert!(PinningVerifier::new(inner.clone(), &pins(&[good])).is_ok());
        assert!(PinningVerifier::new(inner.clone(), &pins(&["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="])).is_ok());
        assert_eq!(
            PinningVerifier::new(inner.clone(), &pins(&["not base64!"])).err(),
            Some(TransportError::Setup("a pin is not base64"))
        );
        assert_eq!(
            PinningVerifier::new(inner.clone(), &pins(&["AAAA"])).err(),
            Some(TransportError::Setup("a pin is not a SHA-256"))
        );
        assert!(PinningVerifier::new(inner, &pins(&[])).is_err());
    }

    /// The wrapped verifier; these tests only build pin sets (the pin check itself is tested
    /// against the real provider in tests/native).
    fn platform_verifier() -> Arc<dyn ServerCertVerifier> {
        rustls_platform_verifier::Verifier::new(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
            .expect("the platform verifier builds")
    }
}
