//! Outbound HTTP for plugins (`wasi:http`): only URLs a rule of the
//! manifest's `grants.http` covers, with credentials the host applies and
//! the plugin never sees. A loopback HTTP server stands in for the service.

use std::path::Path;
use std::sync::{Arc, Mutex};
use storehost::Key;
use storehost::manifest::Manifest;
use storehost::runtime::{Limits, Plugin, PluginSpec, Runtime};
use storehost_tests::{guests, logs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CANARY: &str = "sk-http-canary-4242";
const MARKER: &str = "echo-marker-8191";

/// A minimal HTTP/1.1 server that records every request it receives
/// (head and body) and answers `/…/echo` with what it saw, header values
/// left out, `/…/redirect` with a 302 and `/…/big` with 2 MiB.
struct EchoServer {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl EchoServer {
    async fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, log.clone()));
            }
        });
        EchoServer { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut stream: tokio::net::TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buffer[head_end..]).to_string();
    log.lock().unwrap().push(format!("{head}{body}"));
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, extra, content) = if target.ends_with("/redirect") {
        (
            "302 Found",
            "Location: http://example.invalid/\r\n".to_string(),
            String::new(),
        )
    } else if target.ends_with("/big") {
        ("200 OK", String::new(), "x".repeat(2 << 20))
    } else {
        let names: Vec<String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
            .collect();
        // The request line without its query, which may carry a token.
        let first = head.lines().next().unwrap_or_default();
        let first = first.split('?').next().unwrap_or_default().to_string();
        (
            "200 OK",
            String::new(),
            format!(
                "{MARKER}\n{first}\nheaders: {}\nbody: {body}",
                names.join(",")
            ),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{content}",
        content.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

fn xor_hex(text: &str) -> String {
    text.bytes().map(|b| format!("{:02x}", b ^ 0x55)).collect()
}

/// The probe loaded through a manifest whose `grants.http` is `rules`,
/// pointed at `base` (and at `outside`, which no rule covers).
fn probe(dir: &Path, rules: &str, base: &str, outside: &str) -> Result<Plugin, String> {
    std::fs::write(dir.join("probe.wasm"), guests::HTTPPROBE).unwrap();
    std::fs::write(dir.join("token"), format!("{CANARY}\n")).unwrap();
    let text = format!("plugin: {{ file: probe.wasm }}\ngrants:\n{rules}");
    std::fs::write(dir.join("storehost.yaml"), text).unwrap();
    let loaded = Manifest::read(&dir.join("storehost.yaml"))
        .and_then(|m| m.load_plugin())
        .map_err(|e| e.to_string())?;
    let settings = [
        ("base", base.to_string()),
        ("outside", outside.to_string()),
        ("needle-secret", xor_hex(CANARY)),
        ("needle-control", xor_hex(MARKER)),
    ];
    let spec = PluginSpec {
        name: "httpprobe".into(),
        grants: loaded.grants,
        limits: Limits::default(),
        settings: settings.map(|(k, v)| (k.to_string(), v)).to_vec(),
    };
    Plugin::load(&Runtime::shared().unwrap(), spec, &loaded.wasm).map_err(|e| e.to_string())
}

async fn scenario(plugin: &Plugin, name: &str) -> String {
    let document = plugin.read_one(&Key::auth(name)).await.unwrap().unwrap();
    String::from_utf8(document.content).unwrap()
}

// One thread: the request runs in a spawned task, and the log capture
// sees only its own thread.
#[tokio::test(flavor = "current_thread")]
async fn a_plugin_reaches_only_granted_urls_with_a_credential_it_never_sees() {
    let (_guard, captured) = logs::capture();
    let server = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = format!("http://127.0.0.1:{}", server.port);
    let rules = format!(
        "  http:\n    - url: {root}/allowed\n      max_response_bytes: 1048576\n\
         \x20     credential: {{ header: {{ name: authorization, prefix: 'Bearer ', value: {{ file: token }} }} }}\n"
    );
    let plugin = probe(
        dir.path(),
        &rules,
        &format!("{root}/allowed"),
        &format!("{root}/outside/x"),
    )
    .unwrap();

    let get = scenario(&plugin, "get").await;
    assert!(get.starts_with("200\n"), "{get}");
    assert!(get.contains("GET /allowed/echo"), "{get}");
    assert!(
        get.contains("authorization"),
        "the server got the header: {get}"
    );
    // The memory scan finds what the guest did receive (checked while it is
    // fresh; later calls reuse the memory).
    assert_eq!(scenario(&plugin, "scan-control").await, "found");
    let put = scenario(&plugin, "put").await;
    assert!(
        put.contains("PUT /allowed/echo") && put.ends_with("body: {\"put\":1}"),
        "{put}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("GET /allowed/echo?x=1 HTTP/1.1"),
        "{seen:?}"
    );
    for request in &seen {
        assert!(
            request.contains(&format!("authorization: Bearer {CANARY}")),
            "{request}"
        );
    }

    let outside = scenario(&plugin, "outside").await;
    assert!(outside.contains("HttpRequestDenied"), "{outside}");
    let own_header = scenario(&plugin, "authorization").await;
    assert!(
        own_header.contains("header authorization: HeaderError::Forbidden"),
        "{own_header}"
    );
    let trace = scenario(&plugin, "trace").await;
    assert!(trace.contains("HttpRequestMethodInvalid"), "{trace}");
    let redirect = scenario(&plugin, "redirect").await;
    assert!(
        redirect.starts_with("302\n"),
        "not followed by the host: {redirect}"
    );
    let big = scenario(&plugin, "big").await;
    assert!(big.contains("HttpResponseBodySize"), "{big}");
    assert!(
        !server
            .seen()
            .iter()
            .any(|r| r.contains("/outside") || r.starts_with("TRACE")),
        "{:?}",
        server.seen()
    );
    let logged = captured.text();
    assert!(
        logged.contains("HTTP request denied") && logged.contains("127.0.0.1"),
        "{logged}"
    );

    // The scan works (it finds what the guest did see) and the token is
    // nowhere in the guest's memory, its answers or the host's logs.
    assert_eq!(scenario(&plugin, "scan-secret").await, "absent");
    for text in [get, put, outside, own_header, trace, redirect, big, logged] {
        assert!(!text.contains(CANARY), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_basic_and_shared_key_credentials_are_applied_by_the_host() {
    let server = EchoServer::start().await;
    let root = format!("http://127.0.0.1:{}", server.port);
    let key =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let cases = [
        (
            "query: { token: { file: token } }",
            "GET /c/echo?x=1&".to_string() + CANARY,
        ),
        (
            "basic: { username: { file: user }, password: { file: token } }",
            "authorization: Basic ".into(),
        ),
        (
            "azure_shared_key: { account: acct, key: { file: key } }",
            "authorization: SharedKey acct:".into(),
        ),
    ];
    for (credential, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("user"), "probe").unwrap();
        std::fs::write(dir.path().join("key"), key).unwrap();
        let rules = format!("  http:\n    - url: {root}/c\n      credential: {{ {credential} }}\n");
        let plugin = probe(
            dir.path(),
            &rules,
            &format!("{root}/c"),
            &format!("{root}/d"),
        )
        .unwrap();
        let before = server.seen().len();
        let get = scenario(&plugin, "get").await;
        assert!(get.starts_with("200\n"), "{credential}: {get}");
        assert!(!get.contains(CANARY), "{get}");
        let seen = server.seen();
        assert_eq!(seen.len(), before + 1);
        assert!(
            seen[before].contains(&expected),
            "{credential}: {}",
            seen[before]
        );
        if credential.starts_with("azure") {
            assert!(seen[before].contains("x-ms-date: "), "{}", seen[before]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_a_rule_injects_is_one_the_guest_cannot_set() {
    let server = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = format!("http://127.0.0.1:{}", server.port);
    let rules = format!(
        "  http:\n    - url: {root}/k\n      credential: {{ header: {{ name: x-api-key, value: {{ file: token }} }} }}\n"
    );
    let plugin = probe(
        dir.path(),
        &rules,
        &format!("{root}/k"),
        &format!("{root}/l"),
    )
    .unwrap();

    let injected = scenario(&plugin, "injected").await;
    assert!(
        injected.contains("header x-api-key: HeaderError::Forbidden"),
        "{injected}"
    );
    // Authorization stays forbidden beside the rule's own header.
    let own_header = scenario(&plugin, "authorization").await;
    assert!(
        own_header.contains("HeaderError::Forbidden"),
        "{own_header}"
    );
    let get = scenario(&plugin, "get").await;
    assert!(get.starts_with("200\n") && !get.contains(CANARY), "{get}");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "only the get went out: {seen:?}");
    assert!(
        seen[0].contains(&format!("x-api-key: {CANARY}")) && !seen[0].contains("guest-made"),
        "{}",
        seen[0]
    );
}

#[test]
fn a_plugin_importing_wasi_http_without_a_grant_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let error = probe(
        dir.path(),
        "  capabilities: []\n",
        "http://127.0.0.1:9/x",
        "http://127.0.0.1:9/y",
    )
    .err()
    .unwrap();
    assert!(
        error.contains("imports wasi:http") && error.contains("grants.http"),
        "{error}"
    );
}
