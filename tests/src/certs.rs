//! Throwaway TLS material for the test servers: a CA and a certificate it
//! signs for `localhost` and 127.0.0.1.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub struct LocalhostCert {
    /// The CA's certificate, PEM: what clients trust.
    pub ca_pem: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    /// PKCS#8.
    pub key_der: Vec<u8>,
}

fn new_ca() -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct from the server's: OpenSSL takes a certificate whose subject
    // equals its issuer for self-signed.
    params
        .distinguished_name
        .push(DnType::CommonName, "storehost test CA");
    (params, key)
}

/// A fresh CA and a server certificate it signed.
pub fn localhost() -> LocalhostCert {
    let (ca_params, ca_key) = new_ca();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).unwrap();
    LocalhostCert {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

/// Another CA's certificate, PEM, which signed nothing the servers use.
pub fn unrelated_ca_pem() -> String {
    let (params, key) = new_ca();
    params.self_signed(&key).unwrap().pem()
}
