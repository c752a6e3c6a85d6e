//! `walrelay plugin keygen|sign|verify|digest` as a platform team uses them: a key pair, a
//! signed component, verification against trusted keys, and refusals that say why.
use std::path::Path;
use std::process::Command;

use crate::support::{arg, relay_binary, scratch_dir};

/// Runs walrelay; returns whether it succeeded, its stdout and its stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(relay_binary())
        .args(args)
        .output()
        .expect("run walrelay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `walrelay plugin keygen --out NAME`; returns the public key text.
fn keygen(name: &Path) -> String {
    let (ok, stdout, stderr) = run(&["plugin", "keygen", "--out", arg(name)]);
    assert!(ok, "keygen failed: {stdout}{stderr}");
    let public = std::fs::read_to_string(name.with_extension("pub")).unwrap();
    let public = public.trim().to_string();
    assert!(public.starts_with("ed25519:"), "{public}");
    assert!(
        stdout.contains(&public),
        "keygen prints the public key: {stdout}"
    );
    public
}

#[test]
fn keygen_sign_verify_and_tamper() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch_dir("plugin_sign");
    let release = dir.join("release");
    let public = keygen(&release);
    let secret = dir.join("release.key");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the secret key is private: {mode:o}");

    // Never overwrites a key pair.
    let before = std::fs::read(&secret).unwrap();
    let (ok, _, stderr) = run(&["plugin", "keygen", "--out", arg(&release)]);
    assert!(!ok, "keygen must refuse to overwrite");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&secret).unwrap(), before);

    let component = dir.join("mask.wasm");
    std::fs::write(&component, b"\0asm\x0d\0\x01\0 a small component").unwrap();
    let (ok, stdout, stderr) = run(&["plugin", "sign", "--key", arg(&secret), arg(&component)]);
    assert!(ok, "sign failed: {stdout}{stderr}");
    let signature = dir.join("mask.wasm.sig");
    assert!(signature.exists(), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&signature).unwrap()).unwrap();
    assert_eq!(json["format"], "walrelay-plugin-signature/v1");
    assert_eq!(json["key"], public.as_str());

    // Trusted: ok.
    let (ok, stdout, stderr) = run(&[
        "plugin",
        "verify",
        "--trusted-key",
        &public,
        arg(&component),
    ]);
    assert!(ok, "verify failed: {stdout}{stderr}");
    assert!(
        stdout.contains("ok") && stdout.contains(&public),
        "{stdout}"
    );

    // Only another key trusted: refused, naming the actual signer.
    let other = keygen(&dir.join("other"));
    let (ok, stdout, stderr) = run(&["plugin", "verify", "--trusted-key", &other, arg(&component)]);
    assert!(!ok, "an unknown signer must be refused: {stdout}");
    assert!(
        stderr.contains(&format!("signed by {public}")) && stderr.contains("not a trusted key"),
        "{stderr}"
    );
    // Several trusted keys, one of them the signer: ok.
    let (ok, stdout, stderr) = run(&[
        "plugin",
        "verify",
        "--trusted-key",
        &other,
        "--trusted-key",
        &public,
        arg(&component),
    ]);
    assert!(ok, "{stdout}{stderr}");

    // A signature elsewhere, with --out and --signature.
    let elsewhere = dir.join("sigs-mask.sig");
    let (ok, _, stderr) = run(&[
        "plugin",
        "sign",
        "--key",
        arg(&secret),
        "--out",
        arg(&elsewhere),
        arg(&component),
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&[
        "plugin",
        "verify",
        "--trusted-key",
        &public,
        "--signature",
        arg(&elsewhere),
        arg(&component),
    ]);
    assert!(ok, "{stderr}");

    // Tampered: one byte flipped after signing.
    let mut bytes = std::fs::read(&component).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&component, bytes).unwrap();
    let (ok, stdout, stderr) = run(&[
        "plugin",
        "verify",
        "--trusted-key",
        &public,
        arg(&component),
    ]);
    assert!(!ok, "a tampered component must be refused: {stdout}");
    assert!(stderr.contains("digest differs"), "{stderr}");
    assert!(stderr.contains("mask.wasm"), "{stderr}");

    // No signature at all.
    std::fs::remove_file(&signature).unwrap();
    let (ok, _, stderr) = run(&[
        "plugin",
        "verify",
        "--trusted-key",
        &public,
        arg(&component),
    ]);
    assert!(!ok);
    assert!(stderr.contains("no signature file"), "{stderr}");

    // A malformed trusted key is named.
    let (ok, _, stderr) = run(&[
        "plugin",
        "verify",
        "--trusted-key",
        "ed25519:AAAA",
        arg(&component),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("`ed25519:AAAA` is not a public key"),
        "{stderr}"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn digest_prints_the_same_hex_as_sha256sum() {
    let dir = scratch_dir("plugin_digest");
    let component = dir.join("c.wasm");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&component, bytes).unwrap();
    let (ok, stdout, stderr) = run(&["plugin", "digest", arg(&component)]);
    assert!(ok, "{stderr}");
    let sum = Command::new("sha256sum")
        .arg(&component)
        .output()
        .expect("run sha256sum");
    assert!(sum.status.success());
    let expected = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(expected.len(), 64);
    assert_eq!(stdout.trim(), expected);

    let (ok, _, stderr) = run(&["plugin", "digest", arg(&dir.join("missing.wasm"))]);
    assert!(!ok);
    assert!(stderr.contains("missing.wasm"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_names_interface_imports_digest_and_signer() {
    let mask = crate::support::component("mask");
    let dir = scratch_dir("inspect");
    let copy = dir.join("mask.wasm");
    std::fs::copy(&mask, &copy).unwrap();
    let (ok, out, err) = run(&["plugin", "inspect", arg(&copy)]);
    assert!(ok, "{err}");
    assert!(
        out.contains("interface: walrelay:plugin/transform@0.1.0 (supported)"),
        "{out}"
    );
    assert!(
        out.contains("  walrelay:plugin/host@0.1.0"),
        "imports are listed: {out}"
    );
    assert!(out.contains("signer:    unsigned"), "{out}");
    let (_, digest, _) = run(&["plugin", "digest", arg(&copy)]);
    assert!(
        out.contains(&format!("sha256:    {}", digest.trim())),
        "{out}"
    );
    // Signed: the signer is named.
    let key = dir.join("release");
    let public = keygen(&key);
    let (ok, _, err) = run(&[
        "plugin",
        "sign",
        "--key",
        arg(&key.with_extension("key")),
        arg(&copy),
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["plugin", "inspect", arg(&copy)]);
    assert!(ok);
    assert!(
        out.contains(&format!("signer:    {}", public.trim())),
        "{out}"
    );
    // Not a plugin.
    let (ok, out, _) = run(&[
        "plugin",
        "inspect",
        arg(&crate::support::component("guest-not-a-plugin")),
    ]);
    assert!(ok);
    assert!(
        out.contains("interface: none (not a walrelay plugin)"),
        "{out}"
    );
}
