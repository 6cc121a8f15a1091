//! A tiny origin for the cluster tests: every GET is `200` with `Cache-Control: max-age=3600`
//! and the path as the body, so the edges cache everything they are asked for. Paths under
//! `/fail/` answer `503`; paths under `/slow/` answer after 100 s (the edges' origin read timeout in these tests is 120 s) (a warm task for one blocks its queue on every edge).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// The running origin (its thread ends with the test process).
pub struct Origin {
    pub addr: String,
}

impl Origin {
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    // Read the head; the edge sends no body on GET.
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
                    if path.starts_with("/slow/") {
                        std::thread::sleep(std::time::Duration::from_secs(100));
                    }
                    let status = if path.starts_with("/fail/") { "503 Service Unavailable" } else { "200 OK" };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nCache-Control: max-age=3600\r\nContent-Type: text/plain\r\nContent-Length: \
                         {}\r\nConnection: close\r\n\r\n{path}",
                        path.len()
                    );
                    let _ = (&stream).write_all(response.as_bytes());
                });
            }
        });
        Origin { addr }
    }
}
