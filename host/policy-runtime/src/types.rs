//! Conversions between the SDK's plain types (the host's Rust API) and the generated types of
//! the `edgepurge:policy/types` interface.

use crate::bindings::wit;
use edgepurge_sdk as plain;

pub(crate) fn task(t: &plain::Task) -> wit::Task {
    wit::Task {
        id: t.id,
        kind: match t.kind {
            plain::TaskKind::Url => wit::TaskKind::Url,
            plain::TaskKind::Prefix => wit::TaskKind::Prefix,
            plain::TaskKind::Tag => wit::TaskKind::Tag,
            plain::TaskKind::Host => wit::TaskKind::Host,
            plain::TaskKind::Everything => wit::TaskKind::Everything,
            plain::TaskKind::Warm => wit::TaskKind::Warm,
        },
        target: t.target.clone(),
        soft: t.soft,
        size_bytes: t.size_bytes,
        tenant: t.tenant.clone(),
        host: t.host.clone(),
    }
}

pub(crate) fn queue(q: &plain::QueueState) -> wit::QueueState {
    wit::QueueState {
        index: q.index,
        healthy: q.healthy,
        depth: q.depth,
        pending_bytes: q.pending_bytes,
        pacing_ms: q.pacing_ms,
        samples: q.samples.iter().map(|s| wit::SpeedSample { bytes: s.bytes, millis: s.millis }).collect(),
        peak_bytes_per_sec: q.peak_bytes_per_sec,
        slot: q.slot,
    }
}

fn headers(h: &[plain::Header]) -> Vec<wit::Header> {
    h.iter().map(|h| wit::Header { name: h.name.clone(), value: h.value.clone() }).collect()
}

pub(crate) fn request(r: &plain::RequestMeta) -> wit::RequestMeta {
    wit::RequestMeta { method: r.method.clone(), url: r.url.clone(), headers: headers(&r.headers) }
}

pub(crate) fn response(r: &plain::ResponseMeta) -> wit::ResponseMeta {
    wit::ResponseMeta { status: r.status, headers: headers(&r.headers) }
}

pub(crate) fn plan(p: wit::PurgePlan) -> plain::PurgePlan {
    plain::PurgePlan {
        actions: p
            .actions
            .into_iter()
            .map(|a| plain::PurgeAction {
                scope: match a.scope {
                    wit::Scope::Url(s) => plain::Scope::Url(s),
                    wit::Scope::Prefix(s) => plain::Scope::Prefix(s),
                    wit::Scope::Tag(s) => plain::Scope::Tag(s),
                    wit::Scope::Host(s) => plain::Scope::Host(s),
                    wit::Scope::Everything => plain::Scope::Everything,
                },
                mode: match a.mode {
                    wit::PurgeMode::Hard => plain::PurgeMode::Hard,
                    wit::PurgeMode::Soft => plain::PurgeMode::Soft,
                },
            })
            .collect(),
    }
}

pub(crate) fn decision(d: wit::CacheDecision) -> plain::CacheDecision {
    plain::CacheDecision {
        store: match d.store {
            wit::StoreChoice::Rfc9111 => plain::StoreChoice::Rfc9111,
            wit::StoreChoice::Store => plain::StoreChoice::Store,
            wit::StoreChoice::Bypass => plain::StoreChoice::Bypass,
        },
        ttl_secs: d.ttl_secs,
        stale_while_revalidate_secs: d.stale_while_revalidate_secs,
        stale_if_error_secs: d.stale_if_error_secs,
        tags: d.tags,
    }
}

pub(crate) fn info(i: wit::PolicyInfo) -> plain::PolicyInfo {
    plain::PolicyInfo {
        name: i.name,
        version: i.version,
        hooks: plain::Hooks {
            select_queue: i.hooks.contains(wit::Hooks::SELECT_QUEUE),
            scope_purge: i.hooks.contains(wit::Hooks::SCOPE_PURGE),
            cache_rules: i.hooks.contains(wit::Hooks::CACHE_RULES),
            cache_key: i.hooks.contains(wit::Hooks::CACHE_KEY),
        },
    }
}

pub(crate) fn log_level(l: wit::LogLevel) -> plain::LogLevel {
    match l {
        wit::LogLevel::Trace => plain::LogLevel::Trace,
        wit::LogLevel::Debug => plain::LogLevel::Debug,
        wit::LogLevel::Info => plain::LogLevel::Info,
        wit::LogLevel::Warn => plain::LogLevel::Warn,
        wit::LogLevel::Error => plain::LogLevel::Error,
    }
}
