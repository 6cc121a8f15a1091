//! Glue between the generated bindings and the plain types (compiled on `wasm32` only).
//!
//! The [`Adapter`] implements the generated `Guest` trait for any [`Policy`] by converting
//! arguments to the plain types, calling the policy, and converting the result back.

use crate::__bindings::edgepurge::policy::types as wit;
use crate::__bindings::Guest;
use crate::types as plain;
use crate::Policy;
use std::marker::PhantomData;

/// Implements the generated `Guest` trait for a [`Policy`].
pub struct Adapter<P>(PhantomData<P>);

impl<P: Policy> Guest for Adapter<P> {
    fn describe() -> wit::PolicyInfo {
        let info = P::info();
        let mut hooks = wit::Hooks::empty();
        for (hook, flag) in [
            (plain::Hook::SelectQueue, wit::Hooks::SELECT_QUEUE),
            (plain::Hook::ScopePurge, wit::Hooks::SCOPE_PURGE),
            (plain::Hook::CacheRules, wit::Hooks::CACHE_RULES),
            (plain::Hook::CacheKey, wit::Hooks::CACHE_KEY),
        ] {
            if info.hooks.contains(hook) {
                hooks |= flag;
            }
        }
        wit::PolicyInfo { name: info.name, version: info.version, hooks }
    }

    fn select_queue(tasks: Vec<wit::Task>, queues: Vec<wit::QueueState>, now_ms: u64) -> Vec<u32> {
        let tasks: Vec<plain::Task> = tasks.into_iter().map(task).collect();
        let queues: Vec<plain::QueueState> = queues.into_iter().map(queue).collect();
        P::select_queue(&tasks, &queues, now_ms)
    }

    fn scope_purge(t: wit::Task) -> wit::PurgePlan {
        let plan = P::scope_purge(&task(t));
        wit::PurgePlan { actions: plan.actions.into_iter().map(action).collect() }
    }

    fn cache_rules(request: wit::RequestMeta, response: wit::ResponseMeta) -> wit::CacheDecision {
        let d = P::cache_rules(&request_meta(request), &response_meta(response));
        wit::CacheDecision {
            store: match d.store {
                plain::StoreChoice::Rfc9111 => wit::StoreChoice::Rfc9111,
                plain::StoreChoice::Store => wit::StoreChoice::Store,
                plain::StoreChoice::Bypass => wit::StoreChoice::Bypass,
            },
            ttl_secs: d.ttl_secs,
            stale_while_revalidate_secs: d.stale_while_revalidate_secs,
            stale_if_error_secs: d.stale_if_error_secs,
            tags: d.tags,
        }
    }

    fn cache_key(request: wit::RequestMeta) -> Option<String> {
        P::cache_key(&request_meta(request))
    }
}

/// The WIT log level of a plain one.
pub fn log_level(level: plain::LogLevel) -> wit::LogLevel {
    match level {
        plain::LogLevel::Trace => wit::LogLevel::Trace,
        plain::LogLevel::Debug => wit::LogLevel::Debug,
        plain::LogLevel::Info => wit::LogLevel::Info,
        plain::LogLevel::Warn => wit::LogLevel::Warn,
        plain::LogLevel::Error => wit::LogLevel::Error,
    }
}

fn task(t: wit::Task) -> plain::Task {
    plain::Task {
        id: t.id,
        kind: match t.kind {
            wit::TaskKind::Url => plain::TaskKind::Url,
            wit::TaskKind::Prefix => plain::TaskKind::Prefix,
            wit::TaskKind::Tag => plain::TaskKind::Tag,
            wit::TaskKind::Host => plain::TaskKind::Host,
            wit::TaskKind::Everything => plain::TaskKind::Everything,
            wit::TaskKind::Warm => plain::TaskKind::Warm,
        },
        target: t.target,
        soft: t.soft,
        size_bytes: t.size_bytes,
        tenant: t.tenant,
        host: t.host,
    }
}

fn queue(q: wit::QueueState) -> plain::QueueState {
    plain::QueueState {
        index: q.index,
        healthy: q.healthy,
        depth: q.depth,
        pending_bytes: q.pending_bytes,
        pacing_ms: q.pacing_ms,
        samples: q.samples.into_iter().map(|s| plain::SpeedSample { bytes: s.bytes, millis: s.millis }).collect(),
        peak_bytes_per_sec: q.peak_bytes_per_sec,
        slot: q.slot,
    }
}

fn action(a: plain::PurgeAction) -> wit::PurgeAction {
    wit::PurgeAction {
        scope: match a.scope {
            plain::Scope::Url(s) => wit::Scope::Url(s),
            plain::Scope::Prefix(s) => wit::Scope::Prefix(s),
            plain::Scope::Tag(s) => wit::Scope::Tag(s),
            plain::Scope::Host(s) => wit::Scope::Host(s),
            plain::Scope::Everything => wit::Scope::Everything,
        },
        mode: match a.mode {
            plain::PurgeMode::Hard => wit::PurgeMode::Hard,
            plain::PurgeMode::Soft => wit::PurgeMode::Soft,
        },
    }
}

fn headers(h: Vec<wit::Header>) -> Vec<plain::Header> {
    h.into_iter().map(|h| plain::Header { name: h.name, value: h.value }).collect()
}

fn request_meta(r: wit::RequestMeta) -> plain::RequestMeta {
    plain::RequestMeta { method: r.method, url: r.url, headers: headers(r.headers) }
}

fn response_meta(r: wit::ResponseMeta) -> plain::ResponseMeta {
    plain::ResponseMeta { status: r.status, headers: headers(r.headers) }
}
