//! A TLS terminator for a plain test server, with a certificate for
//! `localhost` and 127.0.0.1 from a throwaway CA, for `https://` URLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

fn server_config() -> (Arc<rustls::ServerConfig>, String) {
    let cert = crate::certs::localhost();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert_der.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_der.into()),
        )
        .unwrap();
    (Arc::new(config), cert.ca_pem)
}

/// Terminates TLS and forwards the bytes to the plain server.
fn serve(listener: std::net::TcpListener, config: Arc<rustls::ServerConfig>, backend: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut front) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut back) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut front, &mut back).await;
            });
        }
    });
}

/// Starts a TLS front for the plain server on `backend`; returns the
/// front's port and the CA's PEM file (written into `dir`). Runs until the
/// process exits.
pub fn start(dir: &Path, backend: u16) -> (u16, PathBuf) {
    let ca_file = dir.join("front-ca.pem");
    let (config, ca_pem) = server_config();
    std::fs::write(&ca_file, ca_pem).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve(listener, config, backend));
    (port, ca_file)
}
