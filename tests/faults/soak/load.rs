//! The soak's hit load: threads that GET hot objects through one edge each over keep-alive
//! connections, counting answers and hits per time window. A refused or broken connection (the
//! edge was killed) is counted as an error and retried after a short pause. Bounded by time and
//! by count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::api::HOST;
use crate::http::Conn;

/// The hot set: `/hot/0` … `/hot/{HOT-1}`.
pub const HOT: usize = 500;
/// At most this many requests per thread, whatever the duration.
const MAX_REQUESTS: u64 = 200_000_000;

/// What one window of the load saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    /// Answers of any status.
    pub answers: u64,
    /// `200` answers served from the store.
    pub hits: u64,
    /// Answers other than `200`.
    pub not_ok: u64,
    /// Connections refused or broken.
    pub errors: u64,
}

/// Starts a load thread against `addr`; it stops when `stop` is set and returns its windows.
pub fn start(
    addr: String,
    seed: usize,
    start: Instant,
    window: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Window>> {
    std::thread::spawn(move || {
        let mut windows: Vec<Window> = Vec::new();
        let slot = |windows: &mut Vec<Window>| {
            let i = (start.elapsed().as_secs_f64() / window.as_secs_f64()) as usize;
            if windows.len() <= i {
                windows.resize(i + 1, Window::default());
            }
            i
        };
        let mut n = seed as u64;
        while !stop.load(Ordering::Relaxed) && n < MAX_REQUESTS {
            let mut conn = match Conn::connect(&addr) {
                Ok(conn) => conn,
                Err(_) => {
                    let i = slot(&mut windows);
                    windows[i].errors += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            while !stop.load(Ordering::Relaxed) && n < MAX_REQUESTS {
                n += 1;
                let path = format!("/hot/{}", (n * 7_919) as usize % HOT);
                let reply = conn.get(HOST, &path);
                let i = slot(&mut windows);
                match reply {
                    Ok(reply) => {
                        let w = &mut windows[i];
                        w.answers += 1;
                        if reply.status != 200 {
                            w.not_ok += 1;
                        } else if reply.is_hit() {
                            w.hits += 1;
                        }
                    }
                    Err(_) => {
                        windows[i].errors += 1;
                        break;
                    }
                }
            }
        }
        windows
    })
}

/// Adds windows up, window by window.
pub fn merge(all: Vec<Vec<Window>>) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for windows in all {
        if out.len() < windows.len() {
            out.resize(windows.len(), Window::default());
        }
        for (o, w) in out.iter_mut().zip(windows) {
            o.answers += w.answers;
            o.hits += w.hits;
            o.not_ok += w.not_ok;
            o.errors += w.errors;
        }
    }
    out
}
