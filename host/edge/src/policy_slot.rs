//! The edge's current policy, swappable without dropping requests: callers clone the `Arc`
//! and keep using the policy they started with, while new requests see the replacement.

use edgepurge_policy_runtime::LoadedPolicy;
use std::sync::{Arc, RwLock};

/// A shared, replaceable policy.
#[derive(Clone)]
pub struct PolicySlot {
    inner: Arc<RwLock<Arc<LoadedPolicy>>>,
}

impl PolicySlot {
    /// A slot holding `policy`.
    pub fn new(policy: LoadedPolicy) -> Self {
        PolicySlot { inner: Arc::new(RwLock::new(Arc::new(policy))) }
    }

    /// The policy to use for one request or task.
    pub fn current(&self) -> Arc<LoadedPolicy> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new policy; calls in flight finish on the old one.
    pub fn replace(&self, policy: LoadedPolicy) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}
