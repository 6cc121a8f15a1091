//! The edge's shared state: configuration, cache store, fill map, policy slot, purge executor,
//! metrics, origin clients and the control consumer's status, built once and shared by every
//! listener and task. Also the two operations on that state every path needs: sending a request
//! to an origin (timed, counted) and storing a filled response.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use edgepurge_edge_cache::{CacheStore, EntryMeta, FillToken, StoreConfig, Variant};
use edgepurge_policy_runtime::PolicySlot;
use http::header;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::config::{EdgeConfig, OriginConfig};
use crate::control_status::ControlStatus;
use crate::fill::{FillConfig, FillError, FillMap};
use crate::http_cache::{CacheConfig, StoredResponse, RFC_CACHEABLE_STATUSES};
use crate::metrics::{EdgeMetrics, OriginOutcome};
use crate::origin_client::OriginClients;
use crate::purge::PurgeExecutor;
use crate::response::ProxyBody;

/// Everything the proxy, the admin listener and the control consumer share.
pub(crate) struct Shared {
    pub config: EdgeConfig,
    pub cache_cfg: CacheConfig,
    pub store: Arc<CacheStore<StoredResponse>>,
    pub fills: FillMap<String>,
    pub policy: PolicySlot,
    pub purger: PurgeExecutor<StoredResponse>,
    pub metrics: Arc<EdgeMetrics>,
    /// The control consumer's status, when `[control]` is configured (for `GET /control`).
    pub control: OnceLock<Arc<ControlStatus>>,
    /// The origin clients (http and https), one per trust set.
    client: OriginClients,
}

impl Shared {
    /// The state for `config`, serving with `policy`; fails when the store or an origin's
    /// `ca-file` cannot be set up, naming it.
    pub fn new(config: EdgeConfig, policy: PolicySlot) -> anyhow::Result<Arc<Shared>> {
        let mib = |m: u64| m.saturating_mul(1 << 20);
        let store_cfg =
            StoreConfig::new(mib(config.cache.capacity_mib)).with_max_object_bytes(mib(config.cache.max_object_mib));
        let store = CacheStore::new(store_cfg, |v: &StoredResponse| u64::from(v.weight()))
            .map_err(|e| anyhow::anyhow!("cache store: {e}"))?;
        let store = Arc::new(store);
        let fills = FillMap::new(FillConfig {
            max_waiters: config.collapse.max_waiters,
            wait_timeout: Duration::from_millis(config.collapse.wait_timeout_ms),
            ..FillConfig::default()
        });
        let cache_cfg = CacheConfig {
            honor_origin: config.cache.honor_origin,
            default_ttl: config.cache.default_ttl_secs.map(Duration::from_secs),
            honor_client_cache_control: config.cache.honor_client_cache_control,
            cacheable_statuses: RFC_CACHEABLE_STATUSES.to_vec(),
        };
        let client = OriginClients::new(&config)?;
        let metrics = Arc::new(EdgeMetrics::default());
        let purger = PurgeExecutor::new(Arc::clone(&store), policy.clone(), Arc::clone(&metrics))
            .with_query_mode(config.cache.query_mode);
        let control = OnceLock::new();
        Ok(Arc::new(Shared { config, cache_cfg, store, fills, policy, purger, metrics, control, client }))
    }

    /// Sends `req` to `origin`, waiting at most its read timeout for the response head.
    pub async fn send(&self, origin: &OriginConfig, req: Request<ProxyBody>) -> Result<Response<Incoming>, FillError> {
        let started = Instant::now();
        let result = self.send_timed(origin, req).await;
        let outcome = match &result {
            Ok(_) => OriginOutcome::Ok,
            Err(FillError::Timeout) => OriginOutcome::Timeout,
            Err(_) => OriginOutcome::Error,
        };
        self.metrics.origin(outcome, started.elapsed());
        if let Err(e) = &result {
            tracing::warn!(origin = %origin.url, error = %e, "origin request failed");
        }
        result
    }

    async fn send_timed(
        &self,
        origin: &OriginConfig,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, FillError> {
        match tokio::time::timeout(origin.read_timeout(), self.client.for_origin(origin).request(req)).await {
            Err(_) => Err(FillError::Timeout),
            Ok(Err(e)) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg = format!("{msg}: {s}");
                    source = s.source();
                }
                Err(FillError::OriginFailed(msg))
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Stores a filled response under its key and `Vary` variant (and, for a varying response,
    /// also as the key's base entry, which tells lookups which headers the key varies on).
    pub fn store_response(&self, token: FillToken, key: &str, url: &str, host: &str, stored: StoredResponse) {
        let meta =
            EntryMeta::new(url, host).with_tags(stored.tags.clone()).with_keep_for(stored.keep_for(SystemTime::now()));
        let varies = stored.headers.contains_key(header::VARY);
        let pairs = stored.vary.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let variant = if varies { Variant::of_varying(pairs) } else { Variant::none() };
        if varies {
            let _ = self.store.insert_filled(token, key, &Variant::none(), meta.clone(), stored.clone());
        }
        if let Err(e) = self.store.insert_filled(token, key, &variant, meta, stored) {
            tracing::debug!(key, error = %e, "response not stored");
        }
    }
}
