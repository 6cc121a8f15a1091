//! `edgepurge dev`: a whole cluster in one process for trying edgepurge out — development
//! certificates, a control node (API and queue server), N edges and a demo origin — with its
//! addresses and an admin token printed and written to `DIR/cluster.json`. Ctrl-C or SIGTERM
//! stops everything, drains the listeners and removes `cluster.json`.

mod cluster;
mod demo_origin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use edgepurge_control::config::ControlConfig;
use edgepurge_control::server::BoundControl;
use edgepurge_edge::config::EdgeConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;

use cluster::{ClusterEdge, ClusterFile, Plan, Ports};

/// The host name the printed examples use; the edges send every host to the origin.
pub const DEMO_HOST: &str = "demo.local";
/// The most edges one `dev` process runs.
const MAX_EDGES: usize = 64;

/// Arguments of `edgepurge dev`.
#[derive(Args)]
pub struct DevArgs {
    /// How many edges (`edge-1` … `edge-N`).
    #[arg(long, default_value_t = 2)]
    edges: usize,
    /// Proxy every host to this origin (http:// or https://) instead of starting the demo origin.
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Where certificates, configs, the database, the edges' receive buffers and cluster.json live
    /// (kept between runs).
    #[arg(long, default_value = ".edgepurge-dev")]
    state_dir: PathBuf,
    /// The purge API's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 7080)]
    api_port: u16,
    /// The queue server's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 7443)]
    queue_port: u16,
    /// Edge i's proxy listens on this + 2(i-1), its admin listener on the next port (0: free ports).
    #[arg(long, default_value_t = 8081)]
    edge_base_port: u16,
    /// The demo origin's port (0: any free port).
    #[arg(long, default_value_t = 8000)]
    origin_port: u16,
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> Result<ExitCode> {
    if !(1..=MAX_EDGES).contains(&args.edges) {
        bail!("--edges {} must be between 1 and {MAX_EDGES}", args.edges);
    }
    if let Some(pid) = cluster::running_elsewhere(&args.state_dir) {
        bail!(
            "another `edgepurge dev` (pid {pid}) runs with the state directory {}: stop it, or pass another --state-dir",
            args.state_dir.display()
        );
    }
    let (origin, origin_url) = match &args.origin {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--origin {url}: the origin must be an http:// or https:// URL");
            }
            (None, url.trim_end_matches('/').to_owned())
        }
        None => {
            let bound = demo_origin::BoundOrigin::bind(SocketAddr::from(([127, 0, 0, 1], args.origin_port))).await?;
            let url = format!("http://{}", bound.local_addr());
            (Some(bound), url)
        }
    };
    let ports = Ports { api: args.api_port, queue: args.queue_port, edge_base: args.edge_base_port };
    let mut plan = cluster::plan(&args.state_dir, args.edges, ports, origin_url)?;
    plan.write_control()?;
    let control_config = ControlConfig::load(&plan.control_path())
        .with_context(|| format!("the generated {} does not load", plan.control_path().display()))?;
    let token = cluster::admin_token(&control_config, &plan.dir).await?;
    let control = BoundControl::start(&control_config)
        .await
        .context("the control node did not start (a port in use? choose others with --api-port and --queue-port)")?;
    // With --queue-port 0 the edges learn the port the queue server bound.
    plan.queue = control.queue_server_addr().context("the control node started without its queue server")?;
    plan.write_edges()?;
    let mut edges = Vec::new();
    for (i, edge) in plan.edges.iter().enumerate() {
        let config = EdgeConfig::load(&plan.edge_path(i))
            .with_context(|| format!("the generated {} does not load", plan.edge_path(i).display()))?;
        edges.push(crate::edge_cmd::start(config).await.with_context(|| {
            format!("{} did not start (a port in use? choose others with --edge-base-port)", edge.name)
        })?);
    }
    let file = ClusterFile {
        api: format!("http://{}", control.local_addr()),
        token,
        edges: plan
            .edges
            .iter()
            .zip(&edges)
            .map(|(e, bound)| ClusterEdge {
                name: e.name.clone(),
                url: format!("http://{}", bound.proxy_addr()),
                admin: format!("http://{}", bound.admin_addr()),
            })
            .collect(),
        origin: plan.origin_url.clone(),
        queue_server: format!("https://{}", plan.queue),
        state_dir: plan.dir.clone(),
        pid: std::process::id(),
    };
    // Owner-only: it holds the admin token.
    cluster::write_private(&plan.cluster_path(), &serde_json::to_vec_pretty(&file)?)?;
    print_summary(&file, &plan, origin.is_some());

    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks: JoinSet<(String, Result<()>)> = JoinSet::new();
    if let Some(origin) = origin {
        let done = until_stopped();
        tasks.spawn(async move {
            origin.serve(done).await;
            ("demo origin".to_owned(), Ok(()))
        });
    }
    let done = until_stopped();
    tasks.spawn(async move {
        control.serve(done).await;
        ("control node".to_owned(), Ok(()))
    });
    for (bound, edge) in edges.into_iter().zip(&plan.edges) {
        let (done, name) = (until_stopped(), edge.name.clone());
        tasks.spawn(async move { (name, bound.serve(done).await) });
    }

    // A part that ends on its own (an error) stops the whole cluster: half a cluster would
    // mislead whoever is trying it.
    let mut failure = None;
    tokio::select! {
        _ = crate::shutdown_signal() => eprintln!("stopping the cluster: draining requests in flight"),
        Some(ended) = tasks.join_next() => failure = Some(ended),
    }
    let _ = stop.send(true);
    let mut errors = Vec::new();
    if let Some(ended) = failure {
        errors.push(match ended {
            Ok((name, Ok(()))) => format!("{name} stopped unexpectedly"),
            Ok((name, Err(e))) => format!("{name}: {e:#}"),
            Err(e) => format!("a cluster task panicked: {e}"),
        });
    }
    while let Some(ended) = tasks.join_next().await {
        match ended {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => errors.push(format!("{name}: {e:#}")),
            Err(e) => errors.push(format!("a cluster task panicked: {e}")),
        }
    }
    remove_cluster_file(&plan);
    if !errors.is_empty() {
        bail!("the cluster stopped because of an error: {}", errors.join("; "));
    }
    eprintln!("cluster stopped; state kept in {} (run `edgepurge dev` again to resume)", plan.dir.display());
    Ok(ExitCode::SUCCESS)
}

fn remove_cluster_file(plan: &Plan) {
    let path = plan.cluster_path();
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove cluster.json; delete it by hand");
        }
    }
}

fn print_summary(file: &ClusterFile, plan: &Plan, demo: bool) {
    let first = &file.edges[0].url;
    let mut out = String::new();
    let n = file.edges.len();
    let origin_kind = if demo { "the demo origin" } else { "your origin" };
    out.push_str(&format!(
        "edgepurge dev: a control node, {n} edge{} and {origin_kind} are running. Ctrl-C stops them.\n\n",
        if n == 1 { "" } else { "s" }
    ));
    out.push_str(&format!("  API           {}\n", file.api));
    out.push_str(&format!("  admin token   {}\n", file.token));
    for edge in &file.edges {
        out.push_str(&format!("  {:<13} proxy {}   admin {}\n", edge.name, edge.url, edge.admin));
    }
    out.push_str(&format!("  origin        {}{}\n", file.origin, if demo { " (demo site and JSON API)" } else { "" }));
    out.push_str(&format!(
        "  queue server  {} (mutual TLS, certificates in {})\n",
        file.queue_server,
        plan.certs.dir.display()
    ));
    out.push_str(&format!("  state         {} (cluster.json holds all of this for scripts)\n\n", plan.dir.display()));
    out.push_str("Try (every edge sends every host to the origin):\n");
    out.push_str(&format!("  curl -si -H 'Host: {DEMO_HOST}' {first}/ | grep -i cache-status   # miss, then hit\n"));
    out.push_str(&format!("  edgepurge purge --url http://{DEMO_HOST}/ --wait\n"));
    if demo {
        out.push_str("  edgepurge purge --tag products --wait                # /api/products and every product\n");
    }
    out.push_str("  edgepurge status ID\n  edgepurge edges\n  edgepurge queues\n");
    if demo {
        out.push_str(&format!(
            "  curl -X POST {}/_touch   # new content at the origin; edges serve the old copy until purged\n",
            file.origin
        ));
        out.push_str(&format!("  curl {}/_stats          # how often the origin was asked, per path\n", file.origin));
    }
    out.push_str(&format!(
        "Other shells or directories: export EDGEPURGE_SERVER={} EDGEPURGE_TOKEN={}\n",
        file.api, file.token
    ));
    print!("{out}");
}
