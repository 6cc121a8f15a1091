//! Reading the operator's configuration for a policy.
//!
//! In a component, [`GuestConfig`] asks the host (the `config` import); natively, it reads a
//! per-thread map that unit tests fill with [`set_test_config`]. The built-in defaults take any
//! [`ConfigSource`], so the host passes its own map to the very same functions.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// Something that answers configuration keys.
pub trait ConfigSource {
    /// The raw value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;

    /// The value of `key` parsed as `T`; `None` when unset or unparsable (a value that does not
    /// parse is logged, so a typo in the operator's config is visible).
    fn get_parsed<T: FromStr>(&self, key: &str) -> Option<T>
    where
        Self: Sized,
    {
        let raw = self.get(key)?;
        match raw.trim().parse() {
            Ok(value) => Some(value),
            Err(_) => {
                crate::log::warn(&format!("config key `{key}` has value `{raw}` that does not parse; ignoring it"));
                None
            }
        }
    }
}

impl ConfigSource for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

impl ConfigSource for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// The configuration the host gives this policy (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestConfig;

#[cfg(target_arch = "wasm32")]
impl ConfigSource for GuestConfig {
    fn get(&self, key: &str) -> Option<String> {
        crate::__bindings::edgepurge::policy::host::config(key)
    }
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static TEST_CONFIG: std::cell::RefCell<BTreeMap<String, String>> = const { std::cell::RefCell::new(BTreeMap::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
impl ConfigSource for GuestConfig {
    fn get(&self, key: &str) -> Option<String> {
        TEST_CONFIG.with(|c| c.borrow().get(key).cloned())
    }
}

/// Natively (unit tests), sets the configuration [`GuestConfig`] answers on this thread.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_test_config<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let map = pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    TEST_CONFIG.with(|c| *c.borrow_mut() = map);
}
