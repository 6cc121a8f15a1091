//! Tests of `config`: parsing, validation and path resolution of edge.toml.
use super::*;

#[test]
fn the_example_config_parses() {
    let text = include_str!("../edge.example.toml");
    let config = EdgeConfig::parse(text, "edge.example.toml").unwrap();
    assert_eq!(config.collapse.max_waiters, 10);
    assert!(config.origin_for("www.example.com").is_some());
}

#[test]
fn admin_networks_match_v4_v6_and_mapped_addresses() {
    let config =
        EdgeConfig::parse("listen = \"127.0.0.1:1\"\nadmin-networks = [\"10.1.0.0/16\", \"fd00::/8\"]\n", "e.toml")
            .unwrap();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(config.is_admin_peer(ip("10.1.2.3")));
    assert!(config.is_admin_peer(ip("::ffff:10.1.2.3")));
    assert!(config.is_admin_peer(ip("fd12::1")));
    assert!(!config.is_admin_peer(ip("10.2.0.1")));
    assert!(!config.is_admin_peer(ip("127.0.0.1")));
}

#[test]
fn mistakes_are_named() {
    let err = EdgeConfig::parse("listen = \"127.0.0.1:1\"\nlisten-typo = 1\n", "e.toml").unwrap_err().to_string();
    assert!(err.contains("listen-typo") && err.contains("edge.example.toml"), "{err}");
    let err = EdgeConfig::parse("listen = \"127.0.0.1:1\"\n[cache]\nquery-mode = \"sometimes\"\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("query-mode"), "{err}");
    let err = EdgeConfig::parse("listen = \"127.0.0.1:1\"\nadmin-networks = [\"10.0.0.0/33\"]\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin-networks") || err.contains("10.0.0.0/33"), "{err}");
    let text = "listen = \"127.0.0.1:1\"\n[[origin]]\nhost = \"a.com\"\nurl = \"ftp://x\"\n";
    assert!(EdgeConfig::parse(text, "e.toml").unwrap_err().to_string().contains("http://"));
}

#[test]
fn tls_and_ca_files_are_checked_and_named() {
    let dir = tempfile::TempDir::new().unwrap();
    let pem = dir.path().join("present.pem");
    std::fs::write(&pem, "x").unwrap();
    let (pem, missing) = (pem.display(), dir.path().join("missing.pem"));
    let missing = missing.display();
    let base = "listen = \"127.0.0.1:1\"\n";

    let ok = format!("{base}[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{pem}\"\nkey = \"{pem}\"\n");
    let config = EdgeConfig::parse(&ok, "e.toml").unwrap();
    assert_eq!(config.tls.unwrap().listen.port(), 2);
    assert!(EdgeConfig::parse(base, "e.toml").unwrap().tls.is_none());

    let text = format!("{base}[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{missing}\"\nkey = \"{pem}\"\n");
    let err = EdgeConfig::parse(&text, "e.toml").unwrap_err().to_string();
    assert!(err.contains("tls.cert") && err.contains("missing.pem") && err.contains("does not exist"), "{err}");
    let text = format!("{base}[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{pem}\"\nkey = \"{}\"\n", dir.path().display());
    let err = EdgeConfig::parse(&text, "e.toml").unwrap_err().to_string();
    assert!(err.contains("tls.key") && err.contains("is not a file"), "{err}");

    let origin = |ca: &str| format!("{base}[[origin]]\nhost = \"a.com\"\nurl = \"https://x\"\nca-file = \"{ca}\"\n");
    let config = EdgeConfig::parse(&origin(&pem.to_string()), "e.toml").unwrap();
    assert_eq!(config.origins[0].ca_file.as_deref(), Some(std::path::Path::new(&pem.to_string())));
    let err = EdgeConfig::parse(&origin(&missing.to_string()), "e.toml").unwrap_err().to_string();
    assert!(err.contains("`a.com`: ca-file") && err.contains("missing.pem"), "{err}");
}

#[test]
fn control_section_is_optional_and_checked() {
    let dir = tempfile::TempDir::new().unwrap();
    let pem = dir.path().join("p.pem");
    std::fs::write(&pem, "x").unwrap();
    let pem = pem.display();
    let base = "listen = \"127.0.0.1:1\"\n";
    assert!(EdgeConfig::parse(base, "e.toml").unwrap().control.is_none());
    let control = |extra: &str| {
        format!("{base}[control]\nca = \"{pem}\"\ncert = \"{pem}\"\nkey = \"{pem}\"\nstate-dir = \"s\"\n{extra}")
    };
    let config = EdgeConfig::parse(&control("nodes = [\"https://127.0.0.1:7443\", \"https://c2\"]"), "e")
        .unwrap()
        .control
        .unwrap();
    assert_eq!((config.buffer_bytes, config.heartbeat_ms), (64 << 20, 1000));
    assert_eq!(config.on_buffer_failure, OnBufferFailure::PurgeAndContinue);
    let stop = EdgeConfig::parse(&control("nodes = [\"https://c\"]\non-buffer-failure = \"stop-serving\""), "e");
    assert_eq!(stop.unwrap().control.unwrap().on_buffer_failure, OnBufferFailure::StopServing);
    let nodes = &config.nodes;
    assert_eq!((nodes[0].host.as_str(), nodes[0].port), ("127.0.0.1", 7443));
    assert_eq!((nodes[1].host.as_str(), nodes[1].port), ("c2", 443));
    let err = |extra: &str| EdgeConfig::parse(&control(extra), "e").unwrap_err().to_string();
    assert!(err("nodes = []").contains("control.nodes is empty"));
    assert!(err("nodes = [\"http://c:1\"]").contains("https://"));
    assert!(err("nodes = [\"https://c:1/x\"]").contains("path"));
    assert!(err("nodes = [\"https://c:1\", \"https://C:1\"]").contains("twice"));
    assert!(err("nodes = [\"https://c\"]\nheartbeat-ms = 1").contains("heartbeat-ms"));
    assert!(err("nodes = [\"https://c\"]\nbuffer-bytes = 10").contains("buffer-bytes"));
    assert!(err("nodes = [\"https://c\"]\ncrl = \"/nonexistent/crl.pem\"").contains("control.crl"));
    assert!(err("nodes = [\"https://c\"]\nnode = 1").contains("node"));
    let bad = err("nodes = [\"https://c\"]\non-buffer-failure = \"ignore\"");
    assert!(bad.contains("on-buffer-failure") && bad.contains("stop-serving"), "{bad}");
}

#[test]
fn a_bad_control_node_fails_the_load_naming_the_key_and_the_value() {
    let dir = tempfile::TempDir::new().unwrap();
    let pem = dir.path().join("p.pem");
    std::fs::write(&pem, "x").unwrap();
    let pem = pem.display();
    let text = |nodes: &str| {
        format!(
            "listen = \"127.0.0.1:1\"\n[control]\nnodes = {nodes}\nca = \"{pem}\"\ncert = \"{pem}\"\n\
             key = \"{pem}\"\nstate-dir = \"s\"\n"
        )
    };
    // A bad entry among good ones is refused, not dropped.
    let err = EdgeConfig::parse(&text("[\"https://c1:7443\", \"https://c2:x\"]"), "e.toml").unwrap_err().to_string();
    assert!(err.contains("control.nodes") && err.contains("https://c2:x"), "{err}");
    let err = EdgeConfig::parse(&text("[\"https://c1?q=1\"]"), "e.toml").unwrap_err().to_string();
    assert!(err.contains("control.nodes") && err.contains("https://c1?q=1"), "{err}");
    let config = EdgeConfig::parse(&text("[\"https://[::1]:7443/\"]"), "e.toml").unwrap().control.unwrap();
    assert_eq!(config.nodes[0], ControlNode { url: "https://[::1]:7443/".into(), host: "::1".into(), port: 7443 });
    assert_eq!(config.node_urls(), ["https://[::1]:7443/"]);
}

#[test]
fn origin_urls_are_parsed_at_load_and_a_bad_one_is_named() {
    let origin = |url: &str| format!("listen = \"127.0.0.1:1\"\n[[origin]]\nhost = \"a.com\"\nurl = \"{url}\"\n");
    for bad in ["ftp://x", "http://", "http://a b/", "http://x/?q=1", "http://x/#f"] {
        let err = EdgeConfig::parse(&origin(bad), "e.toml").unwrap_err().to_string();
        assert!(err.contains("origin url") && err.contains(bad) && err.contains("url ="), "{bad}: {err}");
    }
    let config = EdgeConfig::parse(&origin("https://o.example:8443/base/"), "e.toml").unwrap();
    let url = &config.origins[0].url;
    assert_eq!(url.as_str(), "https://o.example:8443/base/");
    assert_eq!(url.join("/a?b=1").unwrap(), "https://o.example:8443/base/a?b=1");
    let config = EdgeConfig::parse(&origin("http://127.0.0.1:8080"), "e.toml").unwrap();
    assert_eq!(config.origins[0].url.join("/x").unwrap(), "http://127.0.0.1:8080/x");
    assert_eq!(config.origins[0].url.to_string(), "http://127.0.0.1:8080");
}

#[test]
fn relative_paths_are_resolved_against_the_config_files_directory() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    for file in ["edge.pem", "edge.key", "ca.pem", "crl.pem", "origin-ca.pem"] {
        std::fs::write(dir.path().join("certs").join(file), "x").unwrap();
    }
    let text = "listen = \"127.0.0.1:1\"\n\
         [tls]\nlisten = \"127.0.0.1:2\"\ncert = \"certs/edge.pem\"\nkey = \"certs/edge.key\"\n\
         [[origin]]\nhost = \"a.com\"\nurl = \"https://x\"\nca-file = \"certs/origin-ca.pem\"\n\
         [policy]\npath = \"policies/p.wasm\"\n\
         [control]\nnodes = [\"https://c\"]\nca = \"certs/ca.pem\"\ncert = \"certs/edge.pem\"\n\
         key = \"certs/edge.key\"\ncrl = \"certs/crl.pem\"\nstate-dir = \"state\"\n";
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, text).unwrap();
    // Loaded from another working directory: the files are found next to edge.toml.
    let config = EdgeConfig::load(&path).unwrap();
    let at = |p: &str| dir.path().join(p);
    let tls = config.tls.as_ref().unwrap();
    assert_eq!((&tls.files.cert, &tls.files.key), (&at("certs/edge.pem"), &at("certs/edge.key")));
    assert_eq!(config.origins[0].ca_file, Some(at("certs/origin-ca.pem")));
    assert_eq!(config.policy.path, Some(at("policies/p.wasm")));
    let control = config.control.as_ref().unwrap();
    assert_eq!(
        (&control.ca, &control.cert, &control.key),
        (&at("certs/ca.pem"), &at("certs/edge.pem"), &at("certs/edge.key"))
    );
    assert_eq!((control.crl.clone(), &control.state_dir), (Some(at("certs/crl.pem")), &at("state")));
    // A missing relative file is named where it was looked for, with the rule.
    std::fs::remove_file(dir.path().join("certs/edge.key")).unwrap();
    let err = EdgeConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains(&at("certs/edge.key").display().to_string()) && err.contains("file's directory"), "{err}");
}

#[test]
fn the_tls_section_refuses_unknown_keys() {
    let dir = tempfile::TempDir::new().unwrap();
    let pem = dir.path().join("p.pem");
    std::fs::write(&pem, "x").unwrap();
    let pem = pem.display();
    let text = format!(
        "listen = \"127.0.0.1:1\"\n[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{pem}\"\nkey = \"{pem}\"\nkee = 1\n"
    );
    let err = EdgeConfig::parse(&text, "e.toml").unwrap_err().to_string();
    assert!(err.contains("kee"), "{err}");
    let text = format!("listen = \"127.0.0.1:1\"\n[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{pem}\"\n");
    let err = EdgeConfig::parse(&text, "e.toml").unwrap_err().to_string();
    assert!(err.contains("key"), "{err}");
}
