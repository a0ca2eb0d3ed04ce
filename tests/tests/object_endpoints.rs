//! Every form of `OBJECTSTORE_ENDPOINT` users write reaches the server: with
//! and without a scheme, http and https, with a trailing slash. Alone in its
//! binary because it points `SSL_CERT_FILE` (which rustls' native roots
//! read) at the test CA for the whole process.

use std::time::Duration;
use storehost_tests::s3::{self, S3Server};

#[tokio::test]
async fn every_endpoint_form_reaches_the_server_and_a_wrong_scheme_is_a_clear_error() {
    let server = S3Server::start();
    let (tls_port, ca_file) = server.tls_front();
    // SAFETY: the only test of this binary sets it before any client is
    // built, and nothing else here reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };
    let plain = server.port();
    let forms = [
        format!("http://127.0.0.1:{plain}"),
        format!("http://127.0.0.1:{plain}/"),
        format!("HTTP://127.0.0.1:{plain}"),
        format!("https://localhost:{tls_port}"),
        format!("https://localhost:{tls_port}/"),
        // No scheme means HTTPS.
        format!("localhost:{tls_port}"),
    ];
    for (i, endpoint) in forms.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let host = s3::host(endpoint, "forms", dir.path(), Duration::from_secs(60)).await;
        host.bootstrap().await.unwrap();
        let saved = host
            .save_auth(&format!("form-{i}.json"), b"{}")
            .await
            .unwrap();
        assert!(
            host.wait_pushed(&saved, std::time::Duration::from_secs(30))
                .await
                .unwrap(),
            "{endpoint}: {saved:?}"
        );
        assert!(
            server
                .root()
                .join(format!("forms/auths/form-{i}.json"))
                .exists(),
            "{endpoint} wrote through"
        );
    }

    // HTTPS to a server that speaks plain HTTP: refused, and said so.
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("OBJECTSTORE_ENDPOINT", format!("https://127.0.0.1:{plain}")),
        ("OBJECTSTORE_BUCKET", "forms".to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let error = match s3::try_host(&vars, dir.path(), Duration::from_secs(60)).await {
        Ok(host) => host
            .bootstrap()
            .await
            .expect_err("https to plain http must fail"),
        Err(error) => error,
    };
    let shown = error.to_string();
    assert!(
        shown.contains("TLS") || shown.contains("unreachable"),
        "{shown}"
    );
    assert!(!shown.contains(s3::SECRET_KEY), "{shown}");
}
