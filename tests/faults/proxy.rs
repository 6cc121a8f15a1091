//! A TCP proxy between one edge and control's queue server, to partition them: [`Proxy::pause`]
//! stops moving bytes while keeping every connection open (a black hole: only heartbeats can
//! tell), [`Proxy::cut`] closes every connection and refuses new ones (a clean partition), and
//! [`Proxy::heal`] lets traffic through again.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

const OPEN: u8 = 0;
const PAUSED: u8 = 1;
const CUT: u8 = 2;

struct State {
    mode: AtomicU8,
    /// Bumped by every cut: connections of an older epoch close.
    epoch: AtomicU64,
    connections: AtomicU64,
}

/// The running proxy; its threads end with the test process.
pub struct Proxy {
    /// Where the edge connects.
    pub addr: String,
    state: Arc<State>,
}

impl Proxy {
    /// Proxies connections to `target` (`host:port`).
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy binds");
        let addr = listener.local_addr().unwrap().to_string();
        let state =
            Arc::new(State { mode: AtomicU8::new(OPEN), epoch: AtomicU64::new(0), connections: AtomicU64::new(0) });
        let (shared, target) = (state.clone(), target.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if shared.mode.load(Ordering::SeqCst) == CUT {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let epoch = shared.epoch.load(Ordering::SeqCst);
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let state = shared.clone();
                    std::thread::spawn(move || pump(from, to, &state, epoch));
                }
            }
        });
        Proxy { addr, state }
    }

    /// Stops forwarding; connections stay open and bytes wait in the kernel's buffers.
    pub fn pause(&self) {
        self.state.mode.store(PAUSED, Ordering::SeqCst);
    }

    /// Closes every connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
        self.state.mode.store(CUT, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.state.mode.store(OPEN, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, state: &State, epoch: u64) {
    // A short read timeout, so a paused or cut proxy notices without traffic.
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if state.epoch.load(Ordering::SeqCst) != epoch {
            break;
        }
        if state.mode.load(Ordering::SeqCst) == PAUSED {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
