//! Prints PostgreSQL costs against a real server: save latency through the
//! plugin vs the same upsert done directly with sqlx, bootstrap of 10k auth
//! rows next to a baseline, NOTIFY-to-workspace latency, poll costs, and
//! the drain of 5,000 writes queued during an outage.
//! Run with `cargo bench -p storehost-tests --bench postgres`.

use std::time::{Duration, Instant};
use storehost::Storehost;
use storehost_tests::postgres::{self, PostgresServer};
use storehost_tests::{bench_selected, percentiles};

async fn host(server: &PostgresServer, workspace: &std::path::Path, poll: Duration) -> Storehost {
    postgres::host(&server.dsn(), "public", workspace, poll).await
}

async fn save_latency(server: &PostgresServer) {
    let dir = tempfile::tempdir().unwrap();
    let host = host(server, dir.path(), Duration::from_secs(60)).await;
    host.bootstrap().await.unwrap();
    let mut through_plugin = Vec::new();
    for i in 0..500 {
        let started = Instant::now();
        host.plugin()
            .apply(
                vec![storehost::Change::Put {
                    key: storehost::Key::auth(format!("p{}.json", i % 50)),
                    content: format!("{{\"n\":{i}}}").into_bytes(),
                    precondition: storehost::Precondition::Any,
                }],
                "bench",
            )
            .await
            .unwrap();
        through_plugin.push(started.elapsed());
    }
    let pool = sqlx::PgPool::connect(&server.dsn()).await.unwrap();
    let mut direct = Vec::new();
    for i in 0..500 {
        let started = Instant::now();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO auth_store (id, content, created_at, updated_at) VALUES ($1, $2::jsonb, NOW(), NOW()) \
             ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, updated_at = NOW() RETURNING md5(content::text)",
        )
        .bind(format!("d{}.json", i % 50))
        .bind(format!("{{\"n\":{i}}}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        direct.push(started.elapsed());
    }
    let plugin_p50 = percentiles(
        "save via plugin (apply: one tx, triggers notify)",
        through_plugin,
    );
    let direct_p50 = percentiles("same upsert directly with sqlx (one tx)", direct);
    println!(
        "ratio plugin/direct at p50: {:.2}",
        plugin_p50.as_secs_f64() / direct_p50.as_secs_f64()
    );
    let mut write_through = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        host.save_auth(
            &format!("w{}.json", i % 50),
            format!("{{\"n\":{i}}}").as_bytes(),
        )
        .await
        .unwrap();
        write_through.push(started.elapsed());
    }
    percentiles(
        "save_auth write-through (workspace+outbox+pg)",
        write_through,
    );
}

/// Rounds of the bootstrap and of its baseline, interleaved so both see
/// the same machine; the medians are compared.
const BOOTSTRAP_ROUNDS: usize = 5;

async fn bootstrap_rows(server: &PostgresServer) {
    // The tables, when this section runs alone.
    postgres::plugin(&server.dsn(), "public")
        .prepare()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&server.dsn()).await.unwrap();
    sqlx::query(
        "INSERT INTO auth_store (id, content) SELECT 'bulk-' || g || '.json', \
         jsonb_build_object('type', 'claude', 'email', 'u' || g || '@example.com', 'refresh_token', md5(g::text)) \
         FROM generate_series(1, 10000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (mut bootstraps, mut baselines) = (Vec::new(), Vec::new());
    let (mut opens, mut pulls) = (Vec::new(), Vec::new());
    for _ in 0..BOOTSTRAP_ROUNDS {
        baselines.push(baseline_bootstrap(&pool).await);
        // Each round meets the backend as the first instance does: no lineage yet.
        sqlx::query("DELETE FROM storehost_meta")
            .execute(&pool)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let host = host(server, dir.path(), Duration::from_secs(60)).await;
        opens.push(started.elapsed());
        let report = host.bootstrap().await.unwrap();
        bootstraps.push(started.elapsed());
        assert!(report.pulled >= 10_000, "{report:?}");
        // Where the time goes: the plugin's own complete pull, alone.
        let pulled = Instant::now();
        let snapshot = host.plugin().pull(None).await.unwrap();
        pulls.push(pulled.elapsed());
        assert!(snapshot.documents.len() >= 10_000);
    }
    percentiles("  of which: opening the host (load, connect)", opens);
    percentiles("  a complete pull through the plugin, alone", pulls);
    let bootstrap = percentiles("bootstrap of 10000 rows, empty workspace", bootstraps);
    let baseline = percentiles("baseline: the same SELECT, files, one sync", baselines);
    println!(
        "bootstrap / baseline (medians of {BOOTSTRAP_ROUNDS}): {:.2}",
        bootstrap.as_secs_f64() / baseline.as_secs_f64()
    );
}

/// What any program needs to put those rows into files durably.
async fn baseline_bootstrap(pool: &sqlx::PgPool) -> Duration {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let rows = sqlx::query("SELECT id, content::text AS content FROM auth_store")
        .fetch_all(pool)
        .await
        .unwrap();
    let auths = dir.path().join("auths");
    std::fs::create_dir_all(&auths).unwrap();
    for row in rows {
        let id: String = row.get("id");
        let content: String = row.get("content");
        storehost::fsutil::write_atomic_unsynced(&auths.join(id), content.as_bytes()).unwrap();
    }
    storehost::fsutil::sync_filesystem(dir.path()).unwrap();
    started.elapsed()
}

/// 5,000 writes acknowledged while the server is down, then pushed.
async fn drain_after_outage(server: &PostgresServer) {
    let dir = tempfile::tempdir().unwrap();
    let host = host(server, dir.path(), Duration::from_secs(60)).await;
    host.bootstrap().await.unwrap();
    server.stop();
    let started = Instant::now();
    for i in 0..5_000 {
        host.save_auth(
            &format!("outage-{i}.json"),
            format!("{{\"n\":{i}}}").as_bytes(),
        )
        .await
        .unwrap();
    }
    let queued = started.elapsed();
    server.resume();
    let started = Instant::now();
    assert_eq!(host.flush(Duration::from_secs(300)).await.unwrap(), 0);
    println!(
        "5000 writes acknowledged with the server down in {queued:.2?}; drained after it returned in {:.2?}",
        started.elapsed()
    );
}

/// The host's poll after one row changed, next to the plugin's own delta
/// pull: what the host adds.
async fn poll_overhead(server: &PostgresServer) {
    let dir = tempfile::tempdir().unwrap();
    let host = host(server, dir.path(), Duration::from_secs(3600)).await;
    host.bootstrap().await.unwrap();
    let plugin = postgres::plugin(&server.dsn(), "public");
    plugin.prepare().await.unwrap();
    let mut cursor = plugin.pull(None).await.unwrap().cursor;
    let (mut polls, mut pulls) = (Vec::new(), Vec::new());
    for i in 0..20 {
        server.psql(&format!(
            "UPDATE auth_store SET content = '{{\"poll\":{i}}}', updated_at = NOW() WHERE id = 'bulk-{}.json'",
            i + 100
        ));
        let started = Instant::now();
        host.pull_remote().await.unwrap();
        polls.push(started.elapsed());
        let started = Instant::now();
        cursor = plugin.pull(Some(&cursor)).await.unwrap().cursor;
        pulls.push(started.elapsed());
    }
    let poll = percentiles("host poll, one row changed (10k rows)", polls);
    let pull = percentiles("  the plugin's own delta pull", pulls);
    println!(
        "{:<44} {:>9.2?}",
        "  host time beyond the pull (p50)",
        poll.saturating_sub(pull)
    );
}

async fn notify_latency(server: &PostgresServer) {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(server, a_dir.path(), Duration::from_secs(60)).await;
    a.bootstrap().await.unwrap();
    let b = host(server, b_dir.path(), Duration::from_secs(60)).await;
    b.bootstrap().await.unwrap();
    let sync = a.start_sync().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut samples = Vec::new();
    for i in 0..20 {
        let id = format!("notify-{i}.json");
        let started = Instant::now();
        b.save_auth(&id, b"{\"n\":1}").await.unwrap();
        while !a_dir.path().join("auths").join(&id).exists() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(started.elapsed());
    }
    percentiles("NOTIFY: write on b -> file in a's workspace", samples);
    sync.shutdown().await;
}

/// What one poll costs with 10k rows: a complete pull against deltas.
async fn poll_cost(server: &PostgresServer) {
    // Age the rows past the overlap window, as a long-running table is.
    server.psql("UPDATE auth_store SET updated_at = NOW() - INTERVAL '1 hour'");
    let plugin = postgres::plugin(&server.dsn(), "public");
    plugin.prepare().await.unwrap();
    let mut complete = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let started = Instant::now();
        let snapshot = plugin.pull(None).await.unwrap();
        complete.push(started.elapsed());
        assert!(snapshot.complete && snapshot.documents.len() >= 10_000);
        cursor = snapshot.cursor;
    }
    percentiles("poll, complete pull of ~10k rows", complete);
    let mut unchanged = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let snapshot = plugin.pull(Some(&cursor)).await.unwrap();
        unchanged.push(started.elapsed());
        assert!(!snapshot.complete);
        cursor = snapshot.cursor;
    }
    percentiles("poll, delta with nothing changed (10k rows)", unchanged);
    let mut one_change = Vec::new();
    for i in 0..20 {
        server.psql(&format!(
            "UPDATE auth_store SET content = '{{\"n\":{i}}}', updated_at = NOW() WHERE id = 'bulk-{}.json'",
            i + 1
        ));
        let started = Instant::now();
        let snapshot = plugin.pull(Some(&cursor)).await.unwrap();
        one_change.push(started.elapsed());
        assert!(!snapshot.complete && !snapshot.documents.is_empty());
        cursor = snapshot.cursor;
    }
    percentiles("poll, delta after one row changed (10k rows)", one_change);
}

fn main() {
    // As `serve` logs: the spans the bindings open then cost what they cost there.
    storehost::logging::init();
    let server = PostgresServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if bench_selected("save") {
            save_latency(&server).await;
        }
        if bench_selected("notify") {
            notify_latency(&server).await;
        }
        if bench_selected("bootstrap poll") {
            // The poll sections run on the rows bootstrap inserts.
            bootstrap_rows(&server).await;
        }
        if bench_selected("poll") {
            poll_cost(&server).await;
            poll_overhead(&server).await;
        }
        if bench_selected("drain") {
            drain_after_outage(&server).await;
        }
    });
}
