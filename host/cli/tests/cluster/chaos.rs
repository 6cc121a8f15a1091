//! A TCP proxy that cuts connections at random: each connection may carry a random number of
//! bytes (8 KiB to 64 KiB, counted both ways) and is then closed in both directions, mid-frame
//! or mid-TLS-record. The edges must still apply every task exactly as over a perfect network.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The running proxy.
pub struct ChaosProxy {
    /// Where edges connect.
    pub addr: String,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
}

impl ChaosProxy {
    /// Proxies to `target`.
    pub fn start(target: &str) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cuts = Arc::new(AtomicU64::new(0));
        let target = target.to_owned();
        let counter = cuts.clone();
        std::thread::spawn(move || {
            // A fixed seed: a failure can be replayed; the interleaving still varies run to run.
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            for client in listener.incoming().flatten() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let budget = 8 * 1024 + rng % (56 * 1024);
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let left = Arc::new(AtomicU64::new(budget));
                let cut = Arc::new(AtomicU64::new(0));
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let (left, cut, counter) = (left.clone(), cut.clone(), counter.clone());
                    std::thread::spawn(move || pump(from, to, &left, &cut, &counter));
                }
            }
        });
        ChaosProxy { addr, cuts }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, left: &AtomicU64, cut: &AtomicU64, counter: &AtomicU64) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let before = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some(l.saturating_sub(n as u64)));
        let allowed = before.unwrap_or(0).min(n as u64) as usize;
        if to.write_all(&buf[..allowed]).is_err() || allowed < n {
            if cut.swap(1, Ordering::SeqCst) == 0 {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
