//! Optional public-key pinning (SPKI) for the app's own hosts, with backup pins
//! (MASVS-NETWORK-2).
//!
//! A pin is the SHA-256 of a certificate's SubjectPublicKeyInfo, base64-encoded, as in HPKP
//! (`sha256/` prefix optional). A pinned host needs two pins at least, the current key and a
//! backup, or a key rotation locks your users out. Hosts without pins are validated as usual.
//!
//! For a pinned host the ordinary certificate validation runs first (platform verifier, or the
//! configured roots). Then a pinned key must be *on the path that proves the server's
//! certificate*, not merely among the certificates the server sends: a server holding any
//! publicly trusted certificate for the host could append the pinned certificate as an extra
//! "intermediate" (the OkHttp CVE-2016-2402 class). So the pin holds if the server's own key
//! is pinned (the handshake proves the server holds it), or if the chain to the server's
//! certificate builds again, signatures checked, with only pinned certificates as trust
//! anchors: a pinned CA or intermediate the server sends, or a pinned root given in
//! `roots_pem`. (A pinned root of the platform's store that the server does not send cannot be
//! matched: pin the intermediate, or give that root in `roots_pem`.)
//! Native only: in the browser, fetch owns TLS.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
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

/// Pins per host: at least this many different keys (the current one and a backup).
pub const MIN_PINS: usize = 2;

#[derive(Debug)]
struct Pinned {
    host: String,
    hashes: Vec<[u8; 32]>,
}

impl Pinned {
    fn pins(&self, certificate: &CertificateDer<'_>) -> bool {
        spki_hash(certificate).is_some_and(|hash| self.hashes.contains(&hash))
    }
}

/// Wraps a certificate verifier and adds the pin check for pinned hosts.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<Pinned>,
    /// The configured roots: a pinned one may anchor the path.
    roots: Vec<CertificateDer<'static>>,
    algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
}

/// A pinned host as TLS names it: lowercase, no trailing dot, IPv6 without brackets. A name
/// that is not plain ASCII (an IDN in Unicode) is refused: it would never match, leaving the
/// host unpinned without a word; give its punycode (`xn--`) form.
fn pinned_host(host: &str) -> Result<String, TransportError> {
    let host = host.trim().trim_end_matches('.').trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b)) {
        return Err(TransportError::Setup(
            "a pinned host must be a host name (in its ASCII, punycode form) or an IP address",
        ));
    }
    Ok(host.to_ascii_lowercase())
}

fn spki_hash(certificate: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(certificate).ok()?;
    Some(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
}

impl PinningVerifier {
    pub(crate) fn new(
        inner: Arc<dyn ServerCertVerifier>,
        pins: &[HostPins],
        roots: Vec<CertificateDer<'static>>,
        algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
    ) -> Result<Self, TransportError> {
        let mut pinned = Vec::new();
        for host in pins {
            let mut hashes = Vec::new();
            for pin in &host.pins {
                let encoded = pin.strip_prefix("sha256/").unwrap_or(pin);
                let bytes = STANDARD.decode(encoded).map_err(|_| TransportError::Setup("a pin is not base64"))?;
                let hash = <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| TransportError::Setup("a pin is not a SHA-256"))?;
                if !hashes.contains(&hash) {
                    hashes.push(hash);
                }
            }
            if hashes.len() < MIN_PINS {
                return Err(TransportError::Setup(
                    "a pinned host needs at least two different pins: the current key and a backup key",
                ));
            }
            pinned.push(Pinned { host: pinned_host(&host.host)?, hashes });
        }
        Ok(Self { inner, pinned, roots, algorithms })
    }

    /// Whether a pinned key is on the path that proves `end_entity` (see the module guide).
    fn path_is_pinned(
        &self,
        pinned: &Pinned,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> bool {
        if pinned.pins(end_entity) {
            return true;
        }
        let anchors: Vec<_> = intermediates
            .iter()
            .chain(&self.roots)
            .filter(|certificate| pinned.pins(certificate))
            .filter_map(|certificate| webpki::anchor_from_trusted_cert(certificate).ok())
            .collect();
        if anchors.is_empty() {
            return false;
        }
        let Ok(leaf) = webpki::EndEntityCert::try_from(end_entity) else { return false };
        leaf.verify_for_usage(
            self.algorithms,
            &anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
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
        let Some(pinned) = self.pinned.iter().find(|p| p.host == name.trim_end_matches('.').to_ascii_lowercase())
        else {
            return Ok(verified);
        };
        if self.path_is_pinned(pinned, end_entity, intermediates, now) {
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

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    use super::*;

    const HOST: &str = "api.example";

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn pin_of(certificate: &CertificateDer<'_>) -> String {
        format!("sha256/{}", STANDARD.encode(spki_hash(certificate).expect("a certificate")))
    }

    /// A pin of a key that is nowhere (the backup a careful app keeps offline).
    fn backup_pin() -> String {
        pin_of(&ca("Backup").der().clone())
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
    }

    fn intermediate(name: &str, issuer: &CertifiedIssuer<'static, KeyPair>) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), issuer).expect("intermediate")
    }

    fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>) -> CertificateDer<'static> {
        let params = CertificateParams::new(vec![HOST.to_owned()]).expect("params");
        params.signed_by(&KeyPair::generate().expect("key"), issuer).expect("leaf").der().clone()
    }

    /// The verifier an app gets with `roots` in `roots_pem` and `pins` for the host.
    fn verifier(roots: &[&CertifiedIssuer<'static, KeyPair>], pins: Vec<String>) -> PinningVerifier {
        let roots: Vec<CertificateDer<'static>> = roots.iter().map(|root| root.der().clone()).collect();
        let mut store = rustls::RootCertStore::empty();
        for root in &roots {
            store.add(root.clone()).expect("root");
        }
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .expect("verifier");
        let pins = [HostPins { host: HOST.into(), pins }];
        PinningVerifier::new(inner, &pins, roots, provider().signature_verification_algorithms.all).expect("pins")
    }

    fn check(verifier: &PinningVerifier, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let name = ServerName::try_from(HOST).expect("name");
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_pinned_certificate_appended_to_another_cas_chain_is_refused() {
        // The attacker holds a publicly trusted certificate for the host, from another CA, and
        // appends the pinned CA's certificate as if it were an intermediate.
        let public = ca("Public CA");
        let pinned = ca("Pinned CA");
        let verifier = verifier(&[&public], vec![pin_of(pinned.der()), backup_pin()]);
        let forged = [leaf(&public), pinned.der().clone()];
        let refused = check(&verifier, &forged).expect_err("the pinned key signed nothing on the path");
        assert!(refused.contains(PIN_MISMATCH), "{refused}");
        // The same with the pinned certificate presented first among the intermediates, and twice.
        let forged = [leaf(&public), pinned.der().clone(), pinned.der().clone()];
        assert!(check(&verifier, &forged).is_err());
    }

    #[test]
    fn a_pinned_key_on_the_verified_path_is_accepted() {
        let root = ca("Root CA");
        let issuing = intermediate("Issuing CA", &root);
        let server = leaf(&issuing);
        let chain = [server.clone(), issuing.der().clone()];
        // The intermediate the server sends.
        assert_eq!(check(&verifier(&[&root], vec![pin_of(issuing.der()), backup_pin()]), &chain), Ok(()));
        // The server's own key.
        assert_eq!(check(&verifier(&[&root], vec![backup_pin(), pin_of(&server)]), &chain), Ok(()));
        // A root given in roots_pem (never sent by the server).
        assert_eq!(check(&verifier(&[&root], vec![pin_of(root.der()), backup_pin()]), &chain), Ok(()));
        // Nothing pinned on the path.
        let refused = check(&verifier(&[&root], vec![backup_pin(), pin_of(ca("Other").der())]), &chain);
        assert!(refused.is_err_and(|e| e.contains(PIN_MISMATCH)));
    }

    #[test]
    fn a_pinned_intermediate_that_did_not_issue_the_leaf_is_refused() {
        // Both intermediates chain to the trusted root; the pinned one is sent but did not sign the leaf.
        let root = ca("Root CA");
        let pinned = intermediate("Pinned issuing CA", &root);
        let other = intermediate("Other issuing CA", &root);
        let chain = [leaf(&other), other.der().clone(), pinned.der().clone()];
        let verifier = verifier(&[&root], vec![pin_of(pinned.der()), backup_pin()]);
        assert!(check(&verifier, &chain).is_err_and(|e| e.contains(PIN_MISMATCH)));
    }

    #[test]
    fn pin_sets_need_a_backup_and_valid_hashes() {
        let inner = || {
            rustls_platform_verifier::Verifier::new(provider())
                .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
                .expect("the platform verifier builds")
        };
        let build = |pins: &[&str]| {
            let pins = [HostPins { host: HOST.into(), pins: pins.iter().map(|p| (*p).to_owned()).collect() }];
            PinningVerifier::new(inner(), &pins, Vec::new(), provider().signature_verification_algorithms.all).err()
        };
        let good = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let other = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";
        assert_eq!(build(&[good, other]), None);
        let no_backup = Some(TransportError::Setup(
            "a pinned host needs at least two different pins: the current key and a backup key",
        ));
        assert_eq!(build(&[good]), no_backup);
        assert_eq!(build(&[good, good.trim_start_matches("sha256/")]), no_backup, "the same key twice is one pin");
        assert_eq!(build(&[]), no_backup);
        assert_eq!(build(&["not base64!", other]), Some(TransportError::Setup("a pin is not base64")));
        assert_eq!(build(&["AAAA", other]), Some(TransportError::Setup("a pin is not a SHA-256")));
    }

    #[test]
    fn pinned_hosts_are_normalised_or_refused() {
        assert_eq!(pinned_host("API.Example.").unwrap(), "api.example");
        assert_eq!(pinned_host("[::1]").unwrap(), "::1");
        assert!(pinned_host("bücher.example").is_err(), "an IDN in Unicode would silently never match");
        assert!(pinned_host("").is_err());
        // A name written differently still gets its pins checked.
        let root = ca("Root CA");
        let server = leaf(&root);
        let pins = vec![backup_pin(), pin_of(ca("Other").der())];
        let verifier = {
            let mut store = rustls::RootCertStore::empty();
            store.add(root.der().clone()).unwrap();
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
                .build()
                .unwrap();
            let hosts = [HostPins { host: "API.EXAMPLE.".into(), pins }];
            PinningVerifier::new(inner, &hosts, Vec::new(), provider().signature_verification_algorithms.all).unwrap()
        };
        assert!(check(&verifier, &[server]).is_err_and(|e| e.contains(PIN_MISMATCH)), "the pins apply");
    }
}
