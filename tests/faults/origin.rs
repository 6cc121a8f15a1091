//! The test origin: every GET is `200`, cacheable for an hour, with the body `PATH vN` where `N`
//! is the origin's content generation. A purge case bumps the generation before it purges (new
//! content at the origin, then the purge, as an operator does), so an answer after the purge
//! that still carries an older generation is the old object. `Surrogate-Key` is the first path
//! segment (`/t3/x` is tagged `t3`), so tag and prefix purges cover the same objects; paths under
//! `/stale/` are fresh for one second and usable for an hour on origin errors
//! (`stale-if-error`).
//!
//! [`Mode`] turns it into a faulty origin: slow, hung, resetting connections, or dead (its port
//! closed). Requests are counted.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the origin answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// At once.
    Normal,
    /// After this delay.
    Slow(Duration),
    /// Reads the request and never answers (until the mode changes).
    Hung,
    /// Reads the request, sends half a status line, and resets the connection (RST).
    Reset,
    /// The port is closed: connections are refused.
    Dead,
}

struct State {
    mode: Mutex<Mode>,
    generation: AtomicU64,
    requests: AtomicU64,
}

/// The running origin; its threads end with the test process.
pub struct Origin {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    state: Arc<State>,
}

/// The generation in a body the origin served (`PATH vN`).
pub fn body_version(body: &str) -> Option<u64> {
    body.trim_end().rsplit_once(" v")?.1.parse().ok()
}

impl Origin {
    /// Binds a free port and serves.
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the test origin binds");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Normal),
            generation: AtomicU64::new(1),
            requests: AtomicU64::new(0),
        });
        let shared = state.clone();
        std::thread::spawn(move || accept_loop(listener, addr, shared));
        Origin { addr: addr.to_string(), state }
    }

    /// Switches the mode; `Dead` closes the port (existing connections are closed at their next
    /// request), leaving it re-opens it on the same port.
    pub fn set_mode(&self, mode: Mode) {
        let was = std::mem::replace(&mut *self.state.mode.lock().unwrap(), mode);
        if mode == Mode::Dead && was != Mode::Dead {
            // Wake the accept loop so it closes the listener.
            let _ = TcpStream::connect(&self.addr);
        }
    }

    /// New content at the origin: bumps the generation and returns the previous one (what every
    /// object cached before now carries at most).
    pub fn bump(&self) -> u64 {
        self.state.generation.fetch_add(1, Ordering::SeqCst)
    }

    /// Requests received so far (in any mode).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

fn mode(state: &State) -> Mode {
    *state.mode.lock().unwrap()
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, state: Arc<State>) {
    let mut listener = Some(listener);
    loop {
        let Some(open) = &listener else {
            std::thread::sleep(Duration::from_millis(20));
            if mode(&state) != Mode::Dead {
                // std sets SO_REUSEADDR, so the port is ours again at once.
                listener = TcpListener::bind(addr).ok();
            }
            continue;
        };
        let Ok((stream, _)) = open.accept() else { continue };
        if mode(&state) == Mode::Dead {
            listener = None;
            continue;
        }
        let state = state.clone();
        std::thread::spawn(move || serve(stream, &state));
    }
}

fn serve(stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(&stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut close = false;
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            close |= line.to_ascii_lowercase().starts_with("connection: close");
            line.clear();
        }
        state.requests.fetch_add(1, Ordering::SeqCst);
        match mode(state) {
            Mode::Normal => {}
            Mode::Slow(delay) => std::thread::sleep(delay),
            Mode::Hung => {
                while mode(state) == Mode::Hung {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Mode::Reset => {
                let _ = (&stream).write_all(b"HTTP/1.1 2");
                reset(&stream);
                return;
            }
            Mode::Dead => return,
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        if (&stream).write_all(response(&path, state.generation.load(Ordering::SeqCst)).as_bytes()).is_err() || close {
            return;
        }
    }
}

fn response(path: &str, generation: u64) -> String {
    let body = format!("{path} v{generation}\n");
    let tag = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let cache_control = if path.starts_with("/stale/") { "max-age=1, stale-if-error=3600" } else { "max-age=3600" };
    format!(
        "HTTP/1.1 200 OK\r\nCache-Control: {cache_control}\r\nSurrogate-Key: {tag}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Closes `stream` with a TCP reset (SO_LINGER 0), as a crashing origin or a middlebox does.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized `linger`.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(std::net::Shutdown::Read);
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_carry_their_generation() {
        assert_eq!(super::body_version("/a/b v12\n"), Some(12));
        assert_eq!(super::body_version("oops"), None);
    }
}
