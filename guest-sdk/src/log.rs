//! Policy logging. In a component, lines go to the host's log under the policy's name (the
//! host caps and rate-limits them); natively, they go to stderr so `cargo test` shows them.

use crate::types::LogLevel;

/// Writes one log line at `level`.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::__bindings::edgepurge::policy::host::log(crate::__glue::log_level(level), message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[policy {level:?}] {message}");
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}
