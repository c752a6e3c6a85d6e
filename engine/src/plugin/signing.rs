//! Vetted-plugin admission: a plugin component is admitted only if its
//! SHA-256 matches the pin of the configuration and, when the policy asks for
//! it, it carries a valid ed25519 signature by one of the trusted keys. All of
//! this happens on the file's bytes, before anything is compiled or
//! instantiated.
//!
//! # Files
//! * Public key (`NAME.pub`, and the entries of `plugin_policy.trusted_keys`):
//!   `ed25519:<base64 of the 32-byte public key>`.
//! * Secret key (`NAME.key`, mode 0600): `ed25519-secret:<base64 of the
//!   32-byte seed>`.
//! * Signature (`COMPONENT.wasm.sig` by default), JSON:
//!   `{"format": "walrelay-plugin-signature/v1", "sha256": "<hex>",
//!   "key": "ed25519:<base64>", "signature": "<base64 of 64 bytes>"}`.
//!
//! # What is signed
//! The ed25519 signature is over the bytes
//! `walrelay-plugin-signature/v1\n` followed by the lower-case hex SHA-256 of
//! the component ([`signed_message`]), not over the component itself:
//! * the component is hashed once, streaming, whatever its size, and the
//!   signature file records which digest was signed, so that a changed
//!   component is reported as such (the digests differ) rather than as a bare
//!   "bad signature";
//! * the prefix separates domains: a signature made by the same key for any
//!   other purpose (a raw 32-byte hash, a hex string, another tool's format)
//!   can never be replayed as a plugin approval, and a later format version
//!   gets a prefix of its own, so that a v1 signature cannot be read as a v2
//!   one or the reverse.
//!
//! Verification is strict ([`VerifyingKey::verify_strict`]): weak keys and
//! non-canonical signatures are refused.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The `format` of a signature file, and the domain-separation prefix of
/// what is signed.
pub const SIGNATURE_FORMAT: &str = "walrelay-plugin-signature/v1";
/// The prefix of a public key in text.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";
/// The prefix of a secret key file's content.
pub const SECRET_KEY_PREFIX: &str = "ed25519-secret:";

/// A SHA-256 digest; displayed as 64 lower-case hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// Parses 64 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            out[i] = (high * 16 + low) as u8;
        }
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A failure of the key and signature tools (`walrelay plugin keygen`,
/// `sign`, `digest`).
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file exists already.
    #[error(
        "{} already exists: refusing to overwrite a key. Choose another --out name, or move the \
         old key pair away first",
        .path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A secret key file is not in the expected format.
    #[error(
        "{} is not a walrelay secret key: {reason}. Expected `{SECRET_KEY_PREFIX}<base64 of 32 \
         bytes>`, as written by `walrelay plugin keygen`",
        .path.display()
    )]
    BadSecretKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Why a text is not a public key `ed25519:<base64>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `ed25519:` prefix.
    #[error("it does not start with `{PUBLIC_KEY_PREFIX}`")]
    Prefix,
    /// The rest is not base64.
    #[error("the part after `{PUBLIC_KEY_PREFIX}` is not base64 ({0})")]
    Base64(String),
    /// The decoded key does not have 32 bytes.
    #[error("it decodes to {0} bytes, not 32")]
    Length(usize),
    /// 32 bytes that are no usable ed25519 public key.
    #[error("the 32 bytes are not a valid ed25519 public key")]
    Invalid,
}

/// Parses `ed25519:<base64 of 32 bytes>` (surrounding whitespace ignored).
/// Weak (small-order) keys are refused: anyone could forge signatures that
/// verify with them.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let rest = text
        .trim()
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .ok_or(KeyError::Prefix)?;
    let bytes = BASE64
        .decode(rest)
        .map_err(|err| KeyError::Base64(err.to_string()))?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Length(bytes.len()))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Invalid)?;
    if key.is_weak() {
        return Err(KeyError::Invalid);
    }
    Ok(key)
}

/// `ed25519:<base64>`, the text form of a public key.
pub fn format_public_key(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(key.as_bytes()))
}

/// The SHA-256 of the file at `path`, read in chunks.
pub fn sha256_file(path: &Path) -> Result<Digest, SigningError> {
    let read_error = |source| SigningError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(Digest(hasher.finalize().into()))
}

/// What is signed for a component with `digest`: the domain-separation
/// prefix `walrelay-plugin-signature/v1\n`, then the digest in lower-case
/// hex (see the module documentation for why).
pub fn signed_message(digest: &Digest) -> Vec<u8> {
    format!("{SIGNATURE_FORMAT}\n{digest}").into_bytes()
}

/// A parsed signature file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSignature {
    /// The digest of the component that was signed.
    pub digest: Digest,
    /// The key that signed, as recorded in the file.
    pub key: VerifyingKey,
    /// The ed25519 signature of [`signed_message`]`(digest)`.
    pub signature: ed25519_dalek::Signature,
}

/// The JSON form of a signature file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureJson {
    format: String,
    sha256: String,
    key: String,
    signature: String,
}

impl PluginSignature {
    /// Signs the component with `digest` with `key`.
    pub fn sign(key: &SigningKey, digest: Digest) -> PluginSignature {
        PluginSignature {
            digest,
            key: key.verifying_key(),
            signature: key.sign(&signed_message(&digest)),
        }
    }

    /// Parses a signature file's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<PluginSignature, String> {
        let json: SignatureJson =
            serde_json::from_str(text).map_err(|err| format!("not the expected JSON: {err}"))?;
        if json.format != SIGNATURE_FORMAT {
            return Err(format!(
                "unknown format `{}`: expected `{SIGNATURE_FORMAT}`",
                json.format
            ));
        }
        let digest = Digest::from_hex(&json.sha256).ok_or_else(|| {
            format!(
                "`sha256` is `{}`: expected 64 hexadecimal digits",
                json.sha256
            )
        })?;
        let key = parse_public_key(&json.key)
            .map_err(|err| format!("`key` is not a public key: {err}"))?;
        let bytes = BASE64
            .decode(&json.signature)
            .map_err(|err| format!("`signature` is not base64: {err}"))?;
        let bytes: [u8; 64] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("`signature` decodes to {} bytes: expected 64", bytes.len()))?;
        Ok(PluginSignature {
            digest,
            key,
            signature: ed25519_dalek::Signature::from_bytes(&bytes),
        })
    }

    /// The signature file's text (pretty JSON, with a final line break).
    pub fn to_json(&self) -> String {
        let json = SignatureJson {
            format: SIGNATURE_FORMAT.to_string(),
            sha256: self.digest.to_string(),
            key: format_public_key(&self.key),
            signature: BASE64.encode(self.signature.to_bytes()),
        };
        let mut text = serde_json::to_string_pretty(&json).expect("strings serialize");
        text.push('\n');
        text
    }

    /// Whether the signature is a valid signature of the digest by the key
    /// (strict verification).
    pub fn is_valid(&self) -> bool {
        self.key
            .verify_strict(&signed_message(&self.digest), &self.signature)
            .is_ok()
    }
}

/// Which plugins may be instantiated, from `plugin_policy:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Whether every plugin needs a valid signature by a trusted key.
    pub require_signature: bool,
    /// The keys whose signatures are trusted.
    pub trusted: Vec<VerifyingKey>,
}

impl TrustPolicy {
    /// A policy from keys in text (`ed25519:<base64>`); the error gives the
    /// index of the first bad key.
    pub fn from_text_keys<S: AsRef<str>>(
        require_signature: bool,
        keys: &[S],
    ) -> Result<TrustPolicy, (usize, KeyError)> {
        let trusted = keys
            .iter()
            .enumerate()
            .map(|(i, key)| parse_public_key(key.as_ref()).map_err(|err| (i, err)))
            .collect::<Result<_, _>>()?;
        Ok(TrustPolicy {
            require_signature,
            trusted,
        })
    }

    fn trusts(&self, key: &VerifyingKey) -> bool {
        self.trusted.contains(key)
    }
}

/// A component that may be instantiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Its SHA-256.
    pub digest: Digest,
    /// The key that validly signed it (`ed25519:<base64>`), when it has a
    /// signature file.
    pub signer: Option<String>,
    /// Whether that signer is one of the policy's trusted keys (always true
    /// when the policy requires signatures; false when unsigned).
    pub trusted: bool,
}

/// Why a component is refused. Each message names the component and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The component cannot be read.
    #[error("plugin {}: cannot read the component: {source}", .path.display())]
    Unreadable {
        /// The component.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The component is not the one the configuration pins.
    #[error(
        "plugin {}: its sha256 differs from the pin: expected {expected} (the configuration's \
         `sha256:`), actual {actual}. If this component is the one to run, update the pin with \
         the output of `walrelay plugin digest {}`",
        .path.display(),
        .path.display()
    )]
    PinMismatch {
        /// The component.
        path: PathBuf,
        /// The pin of the configuration.
        expected: String,
        /// The component's digest.
        actual: Digest,
    },
    /// Signatures are required and the component has none.
    #[error(
        "plugin {}: no signature file {}, and a signature is required \
         (plugin_policy.require_signature). Sign the component with a trusted key (`walrelay plugin sign --key NAME.key {}`), or set the \
         plugin's `signature:` to where its signature is",
        .path.display(),
        .signature.display(),
        .path.display()
    )]
    MissingSignature {
        /// The component.
        path: PathBuf,
        /// Where its signature was looked for.
        signature: PathBuf,
    },
    /// The signature file exists but cannot be read.
    #[error(
        "plugin {}: cannot read the signature file {}: {source}",
        .path.display(),
        .signature.display()
    )]
    UnreadableSignature {
        /// The component.
        path: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signature file is not a walrelay plugin signature.
    #[error(
        "plugin {}: the signature file {} is not a walrelay plugin signature: {reason}. Sign the \
         component again with `walrelay plugin sign`",
        .path.display(),
        .signature.display()
    )]
    MalformedSignature {
        /// The component.
        path: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The signature is for other bytes: the component changed after it was
    /// signed.
    #[error(
        "plugin {}: the component's digest differs from the signed one: the signature {} is for \
         sha256 {signed}, the component's is {actual}. It was changed after it was signed \
         (tampered with, or rebuilt): refused. Use the component its signer released, or have \
         this one signed",
        .path.display(),
        .signature.display()
    )]
    Tampered {
        /// The component.
        path: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// The digest that was signed.
        signed: Digest,
        /// The component's digest.
        actual: Digest,
    },
    /// Signed by a key that is not trusted.
    #[error(
        "plugin {}: signed by {key}, which is not a trusted key: refused. If you trust this \
         signer, add `{key}` to plugin_policy.trusted_keys",
        .path.display()
    )]
    UnknownSigner {
        /// The component.
        path: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// The signer's key, `ed25519:<base64>`.
        key: String,
    },
    /// The signature does not verify with the key it names.
    #[error(
        "plugin {}: the signature in {} does not verify with its key {key}: it was not made by \
         that key, or it was altered. Refused: have the component signed again",
        .path.display(),
        .signature.display()
    )]
    BadSignature {
        /// The component.
        path: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// The key the file names, `ed25519:<base64>`.
        key: String,
    },
}

/// Decides whether the component at `component_path`, pinned to
/// `pinned_sha256` by the configuration, may be instantiated under `policy`,
/// its signature being at `signature_path`:
/// 1. its SHA-256 must equal the pin;
/// 2. when the policy requires signatures, the signature file must exist,
///    parse, be for this digest, name a trusted key and verify;
/// 3. when it does not, a missing signature file is fine, and a signature by
///    an unknown key is reported (`trusted: false`) but admitted; a
///    signature file that is malformed, for another digest or invalid is
///    refused all the same: a bad signature is never silently ignored.
pub fn admit(
    policy: &TrustPolicy,
    component_path: &Path,
    pinned_sha256: &str,
    signature_path: &Path,
) -> Result<Admission, AdmissionError> {
    let digest = component_digest(component_path)?;
    if !digest
        .to_string()
        .eq_ignore_ascii_case(pinned_sha256.trim())
    {
        return Err(AdmissionError::PinMismatch {
            path: component_path.to_path_buf(),
            expected: pinned_sha256.to_string(),
            actual: digest,
        });
    }
    check_signature(policy, component_path, digest, signature_path)
}

/// As [`admit`] without a pin: only the signature rules
/// (`walrelay plugin verify`).
pub fn verify(
    policy: &TrustPolicy,
    component_path: &Path,
    signature_path: &Path,
) -> Result<Admission, AdmissionError> {
    let digest = component_digest(component_path)?;
    check_signature(policy, component_path, digest, signature_path)
}

/// `component` with `.sig` appended: `mask.wasm` → `mask.wasm.sig`, where a
/// component's signature is by default.
pub fn default_signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

fn component_digest(path: &Path) -> Result<Digest, AdmissionError> {
    sha256_file(path).map_err(|err| match err {
        SigningError::Read { path, source } => AdmissionError::Unreadable { path, source },
        other => AdmissionError::Unreadable {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

fn check_signature(
    policy: &TrustPolicy,
    path: &Path,
    digest: Digest,
    signature_path: &Path,
) -> Result<Admission, AdmissionError> {
    let text = match std::fs::read_to_string(signature_path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if policy.require_signature {
                return Err(AdmissionError::MissingSignature {
                    path: path.to_path_buf(),
                    signature: signature_path.to_path_buf(),
                });
            }
            return Ok(Admission {
                digest,
                signer: None,
                trusted: false,
            });
        }
        Err(source) => {
            return Err(AdmissionError::UnreadableSignature {
                path: path.to_path_buf(),
                signature: signature_path.to_path_buf(),
                source,
            })
        }
    };
    let signature =
        PluginSignature::parse(&text).map_err(|reason| AdmissionError::MalformedSignature {
            path: path.to_path_buf(),
            signature: signature_path.to_path_buf(),
            reason,
        })?;
    if signature.digest != digest {
        return Err(AdmissionError::Tampered {
            path: path.to_path_buf(),
            signature: signature_path.to_path_buf(),
            signed: signature.digest,
            actual: digest,
        });
    }
    let key = format_public_key(&signature.key);
    let trusted = policy.trusts(&signature.key);
    if policy.require_signature && !trusted {
        return Err(AdmissionError::UnknownSigner {
            path: path.to_path_buf(),
            signature: signature_path.to_path_buf(),
            key,
        });
    }
    if !signature.is_valid() {
        return Err(AdmissionError::BadSignature {
            path: path.to_path_buf(),
            signature: signature_path.to_path_buf(),
            key,
        });
    }
    Ok(Admission {
        digest,
        signer: Some(key),
        trusted,
    })
}

/// A new random signing key, from the operating system's generator.
pub fn generate_key() -> Result<SigningKey, SigningError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|err| SigningError::Write {
        path: PathBuf::from("<random seed>"),
        source: std::io::Error::other(format!("no random bytes from the system: {err}")),
    })?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The paths `NAME.key` and `NAME.pub` of the key pair `NAME`.
pub fn key_pair_paths(name: &Path) -> (PathBuf, PathBuf) {
    let with = |extension: &str| {
        let mut path = name.as_os_str().to_os_string();
        path.push(extension);
        PathBuf::from(path)
    };
    (with(".key"), with(".pub"))
}

/// Generates a key pair and writes `NAME.key` (the secret seed, mode 0600)
/// and `NAME.pub` (`ed25519:<base64>`); refuses to overwrite either.
/// Returns the two paths and the public key.
pub fn write_key_pair(name: &Path) -> Result<(PathBuf, PathBuf, VerifyingKey), SigningError> {
    let (secret_path, public_path) = key_pair_paths(name);
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(SigningError::Exists { path: path.clone() });
        }
    }
    let key = generate_key()?;
    let secret = format!(
        "{SECRET_KEY_PREFIX}{}\n",
        BASE64.encode(key.to_bytes().as_slice())
    );
    write_new(&secret_path, secret.as_bytes(), 0o600)?;
    let public = format!("{}\n", format_public_key(&key.verifying_key()));
    write_new(&public_path, public.as_bytes(), 0o644)?;
    Ok((secret_path, public_path, key.verifying_key()))
}

/// Writes a file that must not exist yet, created with `mode` (so that a
/// secret is never readable by others, not even for a moment).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => SigningError::Exists {
                path: path.to_path_buf(),
            },
            _ => SigningError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| SigningError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a secret key file written by [`write_key_pair`].
pub fn read_secret_key(path: &Path) -> Result<SigningKey, SigningError> {
    let text = std::fs::read_to_string(path).map_err(|source| SigningError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| SigningError::BadSecretKey {
        path: path.to_path_buf(),
        reason,
    };
    let rest = text.trim().strip_prefix(SECRET_KEY_PREFIX).ok_or_else(|| {
        bad(format!(
            "it does not start with `{SECRET_KEY_PREFIX}` (is it a public key?)"
        ))
    })?;
    let bytes = BASE64
        .decode(rest)
        .map_err(|err| bad(format!("not base64 ({err})")))?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad(format!("it decodes to {} bytes, not 32", bytes.len())))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Signs the component at `component` with the secret key file `key_file`
/// and writes the signature to `out` (replacing an older one). Returns the
/// signature.
pub fn sign_file(
    key_file: &Path,
    component: &Path,
    out: &Path,
) -> Result<PluginSignature, SigningError> {
    let key = read_secret_key(key_file)?;
    let digest = sha256_file(component)?;
    let signature = PluginSignature::sign(&key, digest);
    std::fs::write(out, signature.to_json()).map_err(|source| SigningError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system's temporary directory.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "walrelay-signing-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A component file, a key, the component's signature, and a policy
    /// trusting the key.
    struct Fixture {
        dir: TempDir,
        component: PathBuf,
        signature: PathBuf,
        key: SigningKey,
        digest: Digest,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = TempDir::new();
            let component = dir.join("mask.wasm");
            std::fs::write(&component, b"\0asm\x0d\0\x01\0 not really a component").unwrap();
            let key = generate_key().unwrap();
            let digest = sha256_file(&component).unwrap();
            let signature = default_signature_path(&component);
            std::fs::write(&signature, PluginSignature::sign(&key, digest).to_json()).unwrap();
            Fixture {
                dir,
                component,
                signature,
                key,
                digest,
            }
        }
        fn policy(&self, require_signature: bool) -> TrustPolicy {
            TrustPolicy {
                require_signature,
                trusted: vec![self.key.verifying_key()],
            }
        }
        fn admit(&self, policy: &TrustPolicy) -> Result<Admission, AdmissionError> {
            admit(
                policy,
                &self.component,
                &self.digest.to_string(),
                &self.signature,
            )
        }
        fn signer(&self) -> String {
            format_public_key(&self.key.verifying_key())
        }
    }

    fn flip_one_byte(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[5] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn digest_is_sha256_in_lower_case_hex() {
        // The SHA-256 test vector of "abc" (FIPS 180-2).
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Digest::of(b"abc").to_string(), abc);
        assert_eq!(
            Digest::from_hex(&abc.to_uppercase()),
            Some(Digest::of(b"abc"))
        );
        assert_eq!(Digest::from_hex("abc"), None);
        assert_eq!(Digest::from_hex(&"g".repeat(64)), None);
        let dir = TempDir::new();
        let file = dir.join("abc");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(sha256_file(&file).unwrap().to_string(), abc);
        // Larger than one read buffer.
        let big = vec![7u8; 200_000];
        std::fs::write(&file, &big).unwrap();
        assert_eq!(sha256_file(&file).unwrap(), Digest::of(&big));
        assert!(matches!(
            sha256_file(&dir.join("missing")),
            Err(SigningError::Read { .. })
        ));
    }

    #[test]
    fn signed_message_is_domain_separated() {
        let digest = Digest::of(b"abc");
        assert_eq!(
            signed_message(&digest),
            format!("walrelay-plugin-signature/v1\n{digest}").into_bytes()
        );
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_named() {
        let key = generate_key().unwrap().verifying_key();
        let text = format_public_key(&key);
        assert!(text.starts_with("ed25519:"), "{text}");
        assert_eq!(parse_public_key(&format!(" {text}\n")), Ok(key));
        assert_eq!(parse_public_key("ssh-ed25519 AAAA"), Err(KeyError::Prefix));
        assert!(matches!(
            parse_public_key("ed25519:not base64!"),
            Err(KeyError::Base64(_))
        ));
        assert_eq!(
            parse_public_key(&format!("ed25519:{}", BASE64.encode([1u8; 31]))),
            Err(KeyError::Length(31))
        );
        // The identity point, a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            parse_public_key(&format!("ed25519:{}", BASE64.encode(identity))),
            Err(KeyError::Invalid)
        );
        assert_eq!(
            TrustPolicy::from_text_keys(true, &[text.as_str(), "nope"]),
            Err((1, KeyError::Prefix))
        );
        let policy = TrustPolicy::from_text_keys(true, &[text]).unwrap();
        assert_eq!(policy.trusted, vec![key]);
    }

    #[test]
    fn signature_file_round_trips_and_bad_ones_are_explained() {
        let key = generate_key().unwrap();
        let signature = PluginSignature::sign(&key, Digest::of(b"component"));
        let text = signature.to_json();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["format"], "walrelay-plugin-signature/v1");
        assert_eq!(json["sha256"], Digest::of(b"component").to_string());
        assert_eq!(json["key"], format_public_key(&key.verifying_key()));
        assert_eq!(PluginSignature::parse(&text), Ok(signature.clone()));
        assert!(signature.is_valid());

        let with = |field: &str, value: &str| {
            let mut json = json.clone();
            json[field] = value.into();
            PluginSignature::parse(&json.to_string()).unwrap_err()
        };
        assert_eq!(
            with("format", "walrelay-plugin-signature/v2"),
            "unknown format `walrelay-plugin-signature/v2`: expected \
             `walrelay-plugin-signature/v1`"
        );
        assert!(with("sha256", "abc").contains("expected 64 hexadecimal digits"));
        assert!(with("key", "ed25519:AAAA").contains("`key` is not a public key"));
        assert!(with("signature", "AAAA").contains("decodes to 3 bytes: expected 64"));
        assert!(PluginSignature::parse("{}")
            .unwrap_err()
            .starts_with("not the expected JSON"));
    }

    #[test]
    fn admits_a_pinned_component_signed_by_a_trusted_key() {
        let f = Fixture::new();
        let admission = f.admit(&f.policy(true)).unwrap();
        assert_eq!(
            admission,
            Admission {
                digest: f.digest,
                signer: Some(f.signer()),
                trusted: true,
            }
        );
        // The pin may be in upper case.
        admit(
            &f.policy(true),
            &f.component,
            &f.digest.to_string().to_uppercase(),
            &f.signature,
        )
        .unwrap();
    }

    #[test]
    fn refuses_a_component_that_differs_from_its_pin() {
        let f = Fixture::new();
        for require in [false, true] {
            let err = admit(
                &f.policy(require),
                &f.component,
                &"0".repeat(64),
                &f.signature,
            )
            .unwrap_err();
            assert!(matches!(err, AdmissionError::PinMismatch { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(&f.component.display().to_string()), "{text}");
            assert!(
                text.contains(&format!("expected {}", "0".repeat(64))),
                "{text}"
            );
            assert!(text.contains(&format!("actual {}", f.digest)), "{text}");
            assert!(text.contains("walrelay plugin digest"), "{text}");
        }
    }

    #[test]
    fn refuses_an_unreadable_component() {
        let f = Fixture::new();
        let missing = f.dir.join("missing.wasm");
        let err = admit(
            &f.policy(false),
            &missing,
            &f.digest.to_string(),
            &f.signature,
        )
        .unwrap_err();
        assert!(matches!(err, AdmissionError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("missing.wasm"), "{err}");
    }

    #[test]
    fn refuses_a_missing_signature_when_required() {
        let f = Fixture::new();
        std::fs::remove_file(&f.signature).unwrap();
        let err = f.admit(&f.policy(true)).unwrap_err();
        assert!(
            matches!(err, AdmissionError::MissingSignature { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("mask.wasm.sig"), "{text}");
        assert!(text.contains("walrelay plugin sign --key"), "{text}");
        // Not required: admitted, unsigned.
        let admission = f.admit(&f.policy(false)).unwrap();
        assert_eq!(admission.signer, None);
        assert!(!admission.trusted);
    }

    #[test]
    fn refuses_a_malformed_signature_file_required_or_not() {
        let f = Fixture::new();
        std::fs::write(&f.signature, "not json").unwrap();
        for require in [true, false] {
            let err = f.admit(&f.policy(require)).unwrap_err();
            assert!(
                matches!(err, AdmissionError::MalformedSignature { .. }),
                "{err}"
            );
            assert!(err
                .to_string()
                .contains("is not a walrelay plugin signature"));
        }
    }

    #[test]
    fn refuses_a_component_changed_after_signing() {
        let f = Fixture::new();
        flip_one_byte(&f.component);
        let actual = sha256_file(&f.component).unwrap();
        for require in [true, false] {
            // Pinned to the new bytes: only the signature can catch it.
            let err = admit(
                &f.policy(require),
                &f.component,
                &actual.to_string(),
                &f.signature,
            )
            .unwrap_err();
            match &err {
                AdmissionError::Tampered {
                    signed, actual: a, ..
                } => {
                    assert_eq!(*signed, f.digest);
                    assert_eq!(*a, actual);
                }
                other => panic!("expected Tampered, got {other}"),
            }
            assert!(err.to_string().contains("digest differs"), "{err}");
        }
        // Pinned to the old bytes: the pin catches it first.
        assert!(matches!(
            f.admit(&f.policy(true)).unwrap_err(),
            AdmissionError::PinMismatch { .. }
        ));
    }

    #[test]
    fn refuses_an_unknown_signer_when_required() {
        let f = Fixture::new();
        let other = generate_key().unwrap();
        let policy = TrustPolicy {
            require_signature: true,
            trusted: vec![other.verifying_key()],
        };
        let err = f.admit(&policy).unwrap_err();
        assert!(matches!(err, AdmissionError::UnknownSigner { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("signed by {}", f.signer())),
            "{text}"
        );
        assert!(text.contains("plugin_policy.trusted_keys"), "{text}");
        // Not required: admitted, the signer reported as untrusted.
        let admission = f
            .admit(&TrustPolicy {
                require_signature: false,
                ..policy
            })
            .unwrap();
        assert_eq!(admission.signer, Some(f.signer()));
        assert!(!admission.trusted);
    }

    #[test]
    fn refuses_a_signature_that_does_not_verify_required_or_not() {
        let f = Fixture::new();
        // A valid-looking file whose signature bytes were altered.
        let mut signature = PluginSignature::sign(&f.key, f.digest);
        let mut bytes = signature.signature.to_bytes();
        bytes[0] ^= 0x01;
        signature.signature = ed25519_dalek::Signature::from_bytes(&bytes);
        std::fs::write(&f.signature, signature.to_json()).unwrap();
        for require in [true, false] {
            let err = f.admit(&f.policy(require)).unwrap_err();
            assert!(matches!(err, AdmissionError::BadSignature { .. }), "{err}");
            assert!(err.to_string().contains("does not verify"), "{err}");
        }
        // A trusted key named on another key's signature.
        let forger = generate_key().unwrap();
        let mut forged = PluginSignature::sign(&forger, f.digest);
        forged.key = f.key.verifying_key();
        std::fs::write(&f.signature, forged.to_json()).unwrap();
        let err = f.admit(&f.policy(true)).unwrap_err();
        assert!(matches!(err, AdmissionError::BadSignature { .. }), "{err}");
        // Without the domain prefix (the bare hex digest signed), refused.
        let mut bare = PluginSignature::sign(&f.key, f.digest);
        bare.signature = f.key.sign(f.digest.to_string().as_bytes());
        std::fs::write(&f.signature, bare.to_json()).unwrap();
        let err = f.admit(&f.policy(true)).unwrap_err();
        assert!(matches!(err, AdmissionError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn verify_checks_signatures_without_a_pin() {
        let f = Fixture::new();
        let admission = verify(&f.policy(true), &f.component, &f.signature).unwrap();
        assert_eq!(admission.signer, Some(f.signer()));
        flip_one_byte(&f.component);
        assert!(matches!(
            verify(&f.policy(true), &f.component, &f.signature).unwrap_err(),
            AdmissionError::Tampered { .. }
        ));
    }

    #[test]
    fn key_pair_files_sign_and_are_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new();
        let name = dir.join("release");
        let (secret, public, key) = write_key_pair(&name).unwrap();
        assert_eq!(secret, dir.join("release.key"));
        assert_eq!(public, dir.join("release.pub"));
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let public_text = std::fs::read_to_string(&public).unwrap();
        assert_eq!(parse_public_key(&public_text), Ok(key));
        assert_eq!(read_secret_key(&secret).unwrap().verifying_key(), key);

        let before = std::fs::read(&secret).unwrap();
        let err = write_key_pair(&name).unwrap_err();
        assert!(matches!(err, SigningError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read(&secret).unwrap(), before);
        // Nor when only the public half is there.
        std::fs::write(dir.join("half.pub"), "x").unwrap();
        assert!(write_key_pair(&dir.join("half")).is_err());
        assert!(!dir.join("half.key").exists());

        let component = dir.join("c.wasm");
        std::fs::write(&component, b"bytes").unwrap();
        let out = default_signature_path(&component);
        assert_eq!(out, dir.join("c.wasm.sig"));
        sign_file(&secret, &component, &out).unwrap();
        let policy = TrustPolicy {
            require_signature: true,
            trusted: vec![key],
        };
        assert_eq!(
            verify(&policy, &component, &out).unwrap().signer,
            Some(format_public_key(&key))
        );

        // A public key is no secret key.
        let err = read_secret_key(&public).unwrap_err();
        assert!(err.to_string().contains("is it a public key?"), "{err}");
    }
}
