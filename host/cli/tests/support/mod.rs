//! Shared by the CLI's test binaries that talk to a running `edgepurge` over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;

/// One HTTP/1.1 request on a fresh connection (send `Connection: close`); the whole response as
/// text.
pub fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}
