//! The command line as a user meets it: --version, --help, and configuration errors that name
//! the file, the line and what was expected.
use std::process::Command;

use crate::support::{relay_binary, unique};

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(relay_binary())
        .args(args)
        .output()
        .expect("run walrelay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn version_and_help() {
    let (ok, text) = run(&["--version"]);
    assert!(ok);
    assert_eq!(
        text.trim(),
        format!("walrelay {}", env!("CARGO_PKG_VERSION"))
    );
    let (ok, text) = run(&["--help"]);
    assert!(ok);
    assert!(text.contains("run") && text.contains("check"), "{text}");
}

#[test]
fn bad_config_reports_every_problem_with_its_line() {
    let dir = std::env::temp_dir()
        .join("walrelay-e2e")
        .join(unique("badcfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "source:\n  postgres:\n    url: postgres://u@127.0.0.1/db\n    slot: Bad-Slot\n    publication: p\n    tables: [public.t]\n\
         topic_prefix: p\nsink:\n  kafka:\n    brokers: 127.0.0.1:9092\n    properties:\n      acks: 1\nplugins: []\n",
    )
    .unwrap();
    let (ok, text) = run(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok, "a bad config must fail: {text}");
    assert!(
        text.contains("bad.yaml:4:"),
        "slot problem names line 4: {text}"
    );
    assert!(
        text.contains("bad.yaml:12:"),
        "acks problem names line 12: {text}"
    );
    assert!(text.contains("acks"), "{text}");

    std::fs::write(&path, "source:\n  postgres:\n    urll: x\n").unwrap();
    let (ok, text) = run(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("bad.yaml:3:") && text.contains("urll"),
        "unknown key with its line: {text}"
    );
}
