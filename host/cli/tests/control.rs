//! The real binary: `edgepurge token create` prints a token once, `edgepurge control` serves the
//! API with it, answers a purge with 202 and exits cleanly on SIGTERM; a second token with the
//! same name is refused.

use std::process::Command;

mod support;

use support::http;

use support::BIN;

#[test]
#[cfg(unix)]
fn token_create_then_control_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("control.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ndatabase = \"control.db\"\n").unwrap();
    let create = |name: &str| {
        Command::new(BIN)
            .args(["token", "create", "--config"])
            .arg(&config)
            .args(["--name", name, "--hosts", "example.com,*.example.com"])
            .output()
            .unwrap()
    };
    let out = create("shop");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("ep_") && token.len() == 67, "{token}");
    assert!(!create("shop").status.success(), "a duplicate name is refused");

    let (mut control, api) = support::start_control(&config);
    let addr = api.strip_prefix("http://").expect("plain HTTP on loopback").to_owned();

    let body = r#"{"urls": ["https://www.example.com/a"]}"#;
    let response = http(
        &addr,
        &format!(
            "POST /v1/purges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    let denied = http(&addr, "GET /v1/purges/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");

    let status = Command::new("kill").args(["-TERM", &control.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(control.wait().unwrap().success(), "exits cleanly after SIGTERM");
}
