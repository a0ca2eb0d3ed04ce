//! The one log filter rule the host applies whatever `RUST_LOG` says: the
//! HTTP and SDK crates under the capabilities may log at most INFO. At
//! DEBUG and TRACE, aws-smithy prints resolved identities (the access key
//! id) with endpoint parameters and request configurations.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

/// Crates whose TRACE output could carry credentials or signed requests.
const CAPPED_TARGETS: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_s3",
    "aws_sigv4",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
    "sqlx",
];

/// Everything passes except DEBUG and TRACE from the capped crates; add it as a
/// layer over the subscriber (`fmt().finish().with(sdk_cap())`).
pub fn sdk_cap() -> Targets {
    CAPPED_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(*target, LevelFilter::INFO),
    )
}

/// The subscriber every `storehost` command installs: `RUST_LOG` (INFO when
/// unset or invalid) to stderr, under [`sdk_cap`]. Benchmarks install it
/// too: without any subscriber, `tracing`'s `log` fallback does work at
/// every span the bindings open that a running host never does.
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish()
        .with(sdk_cap())
        .init();
}
