//! A small load tool: runs the control API in-process over a fresh SQLite file (fsync at every
//! commit, as in production) and measures, over real loopback HTTP,
//!
//! - the accept time of one bulk `text/plain` request of N URLs (URLs/s), and
//! - p50/p99 of single-URL JSON submissions sent one after another.
//!
//! `cargo run --release -p edgepurge-control --example load -- [BULK_URLS] [SINGLES] [DB_DIR]`
//! (defaults 100000, 1000, a temporary directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgepurge_control::api::router;
use edgepurge_control::auth::create_token;
use edgepurge_control::config::ControlConfig;
use edgepurge_control::health::system_clock;
use edgepurge_control::server::BoundControl;
use edgepurge_control::state::AppState;
use edgepurge_control_store::SqliteStore;
use edgepurge_policy_runtime::LoadedPolicy;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bulk: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let singles: usize = args.get(2).map_or(Ok(1000), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let dir = args.get(3).map_or(tmp.path().to_owned(), std::path::PathBuf::from);
    let db = dir.join("load.db");
    // Each run measures a fresh database: drop what an earlier run left in DB_DIR.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("load.db{suffix}")));
    }
    let config = ControlConfig::parse(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase = {db:?}\n[rate-limit]\nburst = 1000000\nper-second = 1000000.0"
    ))?;
    let store = SqliteStore::open(&db, 4)?;
    let token = create_token(&store, "load", &["*.example.com".into()], false, 0).await?;
    let state = AppState::new(store, LoadedPolicy::builtin(Default::default()), &config, system_clock());
    let bound = BoundControl::bind(&config, router(Arc::new(state))).await?;
    let base = format!("http://{}/v1/purges", bound.local_addr());
    tokio::spawn(bound.serve(std::future::pending::<()>()));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let send = |ct: &'static str, body: Bytes| {
        let req = hyper::Request::post(&base)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", ct)
            .body(Full::new(body))
            .expect("request");
        let client = client.clone();
        async move {
            let resp = client.request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::ensure!(status == 202, "{status}: {}", String::from_utf8_lossy(&body));
            anyhow::Ok(())
        }
    };

    if bulk > 0 {
        let mut body = String::with_capacity(bulk * 60);
        for i in 0..bulk {
            body.push_str(&format!("https://h{}.example.com/assets/img/{i:08}.jpg?v=3\n", i % 100));
        }
        let bytes = body.len();
        let start = Instant::now();
        send("text/plain", Bytes::from(body)).await?;
        let took = start.elapsed();
        println!(
            "bulk: {bulk} URLs ({:.1} MiB) accepted in {:.2} s = {:.0} URLs/s",
            bytes as f64 / 1048576.0,
            took.as_secs_f64(),
            bulk as f64 / took.as_secs_f64()
        );
    }
    if singles > 0 {
        let mut times: Vec<Duration> = Vec::with_capacity(singles);
        for i in 0..singles {
            let body = format!("{{\"urls\": [\"https://www.example.com/single/{i}\"]}}");
            let start = Instant::now();
            send("application/json", Bytes::from(body)).await?;
            times.push(start.elapsed());
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "single: {singles} sequential POSTs, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
