//! Shared by the CLI's test binaries that run the real `edgepurge`: plain HTTP requests,
//! starting the control role, creating tokens. Each binary uses a part of it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_edgepurge");

/// One HTTP/1.1 request on a fresh connection (send `Connection: close`); the whole response as
/// text.
pub fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// Starts `edgepurge control --config CONFIG` (stderr discarded); returns the child and the API
/// URL from its first line (`http://127.0.0.1:PORT` or `https://…`).
pub fn start_control(config: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["control", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let api = first.trim().strip_prefix("control API on ").expect("the address line").to_owned();
    (child, api)
}

/// `edgepurge token create --config CONFIG --name NAME EXTRA…`; the printed token.
pub fn create_token(config: &Path, name: &str, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--config"])
        .arg(config)
        .args(["--name", name])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
