//! TLS for zone transfers (XoT, RFC 9103) with rustls: the server side's configuration
//! (certificate chain and key from PEM files) and the client side's (the primary's
//! certificate checked against a CA file, a pinned SubjectPublicKeyInfo, or not at all
//! when opportunistic). TLS 1.3 only and ALPN "dot" both ways (RFC 9103 §7.1), with the
//! ring provider. No sockets here: `tcp` drives the server connections on its mio loop,
//! `secondary` the client connections on its worker threads.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::secondary::check::TlsAuth;

/// The ALPN protocol of DNS over TLS, which XoT requires (RFC 9103 §7.1).
pub const ALPN_DOT: &[u8] = b"dot";

/// A TLS setup that cannot be made: the file and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("binding TLS {addr}: {e}")]
    Bind { addr: std::net::SocketAddr, e: std::io::Error },
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), why: why.to_string() }
}

/// ring's provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange
/// (aws-lc-rs has it, at the price of a C/CMake build); TLS 1.3 with X25519 or P-256 is
/// what BIND 9.18 and Knot offer for XoT today.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in it (PEM \"BEGIN CERTIFICATE\")"));
    }
    Ok(certs)
}

/// The server side: `certificate` (PEM, the server's certificate first, then its chain)
/// and `key` (PEM: PKCS#8, PKCS#1 or SEC1).
pub fn server_config(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certificates(certificate)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| file_error(key, format!("does not go with {}: {e}", certificate.display())))?;
    c.alpn_protocols = vec![ALPN_DOT.to_vec()];
    // A secondary makes a connection a refresh: nothing to gain from resumption.
    c.send_tls13_tickets = 0;
    Ok(Arc::new(c))
}

/// Serves the configuration's `tls-listen` addresses, if any, on the TCP server (its
/// certificate and key read now). Returns the addresses bound.
pub fn listen(
    tcp: &mut super::tcp::TcpServer,
    config: Option<&crate::config::Config>,
) -> Result<Vec<std::net::SocketAddr>, TlsError> {
    let Some(t) = config.and_then(|c| c.server.tls.as_ref()) else { return Ok(Vec::new()) };
    let server = server_config(&t.certificate, &t.key)?;
    for &addr in &t.listen {
        tcp.listen_tls(&[addr], server.clone()).map_err(|e| TlsError::Bind { addr, e })?;
    }
    let bound = tcp.tls_local_addrs();
    log::info!("zone transfers over TLS on {bound:?}");
    Ok(bound)
}

/// The client side for a primary reached over TLS, checked as `auth` says; the CA file is
/// read now (each check reads it again, so a replaced file needs no reload).
pub fn client_config(auth: &TlsAuth) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let webpki = match &auth.ca_file {
        None => None,
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(path)? {
                roots.add(c).map_err(|e| file_error(path, e))?;
            }
            let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| file_error(path, e))?;
            Some(v)
        }
    };
    let verifier =
        PrimaryVerifier { webpki, pins: auth.pins.clone(), algorithms: provider.signature_verification_algorithms };
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    c.alpn_protocols = vec![ALPN_DOT.to_vec()];
    Ok(Arc::new(c))
}

/// The name the primary's certificate is checked for: `tls-hostname`, else its address.
pub fn server_name(auth: &TlsAuth, addr: IpAddr) -> Result<ServerName<'static>, TlsError> {
    match &auth.hostname {
        Some(h) => ServerName::try_from(h.clone())
            .map_err(|e| TlsError::Rustls(rustls::Error::General(format!("tls-hostname {h:?}: {e}")))),
        None => Ok(ServerName::IpAddress(addr.into())),
    }
}

/// Checks a primary's certificate: chained to the CA for the name (with a CA file), its
/// public key one of the pins (with pins), or nothing (opportunistic). The handshake's
/// signature is checked in every case, so the peer holds the key of the certificate it
/// showed.
#[derive(Debug)]
struct PrimaryVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PrimaryVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(v) = &self.webpki {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        }
        if !self.pins.is_empty() {
            let spki = subject_public_key_info(end_entity)
                .ok_or(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
            let digest: [u8; 32] = Sha256::digest(spki).into();
            if !self.pins.contains(&digest) {
                return Err(rustls::Error::General(format!(
                    "the primary's public key (pin {}) is not one of tls-pin",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest)
                )));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The DER of an X.509 certificate's SubjectPublicKeyInfo (RFC 5280 §4.1: the seventh
/// element of the TBSCertificate when the version is present, else the sixth), what an
/// SPKI pin is the SHA-256 of. None when the certificate is not shaped so.
pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xA0;
    let (SEQUENCE, certificate, _) = der(cert)? else { return None };
    let (SEQUENCE, tbs, _) = der(certificate)? else { return None };
    let mut rest = tbs;
    if let Some((VERSION, _, after)) = der(rest) {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject.
    for want in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE] {
        let (tag, _, after) = der(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (SEQUENCE, _, after) = der(rest)? else { return None };
    Some(&rest[..rest.len() - after.len()])
}

/// One DER element: its tag, its contents and what follows it (definite lengths of up to
/// four octets).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, b) = b.split_first()?;
    let (len, b) = match first {
        0..=0x7F => (usize::from(first), b),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7F);
            let (octets, b) = (b.get(..n)?, &b[n..]);
            (octets.iter().fold(0usize, |a, &o| (a << 8) | usize::from(o)), b)
        }
        _ => return None,
    };
    (len <= b.len()).then(|| (tag, &b[..len], &b[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["primary.test".to_string()]).unwrap();
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn the_spki_is_found_where_rcgen_put_it() {
        let (cert, key) = certificate();
        let spki = subject_public_key_info(cert.der()).expect("an SPKI");
        assert_eq!(spki, &key.public_key_der()[..]);
        // Cut anywhere, or with a tag changed, the certificate gives no SPKI and no panic.
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = subject_public_key_info(&der[..cut]);
        }
        for i in 0..der.len().min(64) {
            let mut bad = der.clone();
            bad[i] ^= 0xFF;
            let _ = subject_public_key_info(&bad);
        }
        assert_eq!(subject_public_key_info(&der[..der.len() / 2]), None);
    }

    #[test]
    fn files_that_do_not_hold_what_they_should_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate();
        let (c, k, empty) = (dir.path().join("c.pem"), dir.path().join("k.pem"), dir.path().join("empty.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&empty, "nothing here\n").unwrap();
        assert!(server_config(&c, &k).is_ok());
        let e = server_config(&empty, &k).unwrap_err().to_string();
        assert!(e.starts_with(&empty.display().to_string()) && e.contains("no certificate"), "{e}");
        let e = server_config(&c, &empty).unwrap_err().to_string();
        assert!(e.starts_with(&empty.display().to_string()), "{e}");
        let e = server_config(&c, &dir.path().join("missing.pem")).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        // Another key than the certificate's.
        let other = dir.path().join("other.pem");
        std::fs::write(&other, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let e = server_config(&c, &other).unwrap_err().to_string();
        assert!(e.contains("does not go with"), "{e}");
        let auth = TlsAuth { ca_file: Some(empty.clone()), ..TlsAuth::default() };
        let e = client_config(&auth).unwrap_err().to_string();
        assert!(e.contains("empty.pem"), "{e}");
    }
}
