//! TLS for both connections to PostgreSQL (the SQL one and the replication one), with libpq's
//! `sslmode` semantics:
//!
//! | sslmode | encrypted | server certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` (default) | when the server offers it | no | no |
//! | `require` | yes | only when `sslrootcert` is given (as libpq) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! `sslrootcert` names a PEM file of trusted CAs (default: the system's store); `sslcert` and
//! `sslkey` a PEM client certificate and its PKCS#8 key. They are read from the connection string
//! (URL query or `key=value` pairs) and taken out of it before tokio-postgres parses the rest, as
//! it knows neither the `verify-*` modes nor the files.
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// What the connection string says about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, TlsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(TlsError::Mode(other.to_string()));
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode `{0}` is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path} is not usable: {source}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: native_tls::Error,
    },
    #[error("sslcert and sslkey go together: give both or neither")]
    HalfIdentity,
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] native_tls::Error),
}

/// The TLS part of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// TLS parameters this module handles; the rest of the string goes to tokio-postgres.
const KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsSettings {
    /// Takes the TLS parameters out of a connection string (`postgres://…?sslmode=…` or
    /// `host=… sslmode=…`); returns the rest of the string and the settings.
    pub fn split(conn: &str) -> Result<(String, TlsSettings), TlsError> {
        let mut found: Vec<(String, String)> = Vec::new();
        let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
            match conn.split_once('?') {
                None => conn.to_string(),
                Some((base, query)) => {
                    let mut kept = Vec::new();
                    for pair in query.split('&').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        if KEYS.contains(&k) {
                            found
                                .push((k.into(), percent_decode_str(v).decode_utf8_lossy().into()));
                        } else {
                            kept.push(pair);
                        }
                    }
                    if kept.is_empty() {
                        base.to_string()
                    } else {
                        format!("{base}?{}", kept.join("&"))
                    }
                }
            }
        } else {
            let mut kept = Vec::new();
            for (k, v, raw) in key_value_pairs(conn) {
                if KEYS.contains(&k.as_str()) {
                    found.push((k, v));
                } else {
                    kept.push(raw);
                }
            }
            kept.join(" ")
        };
        let mut settings = TlsSettings::default();
        for (k, v) in found {
            match k.as_str() {
                "sslmode" => settings.mode = SslMode::parse(&v)?,
                "sslrootcert" => settings.root_cert = Some(v.into()),
                "sslcert" => settings.cert = Some(v.into()),
                _ => settings.key = Some(v.into()),
            }
        }
        Ok((rest, settings))
    }

    /// The connector for this mode; `None` under `disable`. Reads the certificate files.
    pub fn connector(&self) -> Result<Option<native_tls::TlsConnector>, TlsError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let mut b = native_tls::TlsConnector::builder();
        let verify_chain = match self.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            // libpq: `require` with a root certificate file verifies like `verify-ca`.
            SslMode::Require => self.root_cert.is_some(),
            SslMode::Prefer | SslMode::Disable => false,
        };
        if let Some(path) = &self.root_cert {
            let pem = read("sslrootcert", path)?;
            let cert = native_tls::Certificate::from_pem(&pem).map_err(|source| TlsError::Pem {
                what: "sslrootcert",
                path: path.clone(),
                source,
            })?;
            b.add_root_certificate(cert);
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let identity = native_tls::Identity::from_pkcs8(
                    &read("sslcert", cert)?,
                    &read("sslkey", key)?,
                )
                .map_err(|source| TlsError::Pem {
                    what: "sslcert/sslkey",
                    path: cert.clone(),
                    source,
                })?;
                b.identity(identity);
            }
            (None, None) => {}
            _ => return Err(TlsError::HalfIdentity),
        }
        b.danger_accept_invalid_certs(!verify_chain);
        b.danger_accept_invalid_hostnames(self.mode != SslMode::VerifyFull);
        b.build().map(Some).map_err(TlsError::Setup)
    }

    /// The mode tokio-postgres is given: it knows `prefer` and `require` (the `verify-*` modes
    /// are `require` plus the connector's checks).
    pub fn postgres_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self.mode {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// `key=value` pairs of a libpq keyword/value string, values optionally single-quoted with
/// `\'` and `\\` escapes; each with its raw text.
fn key_value_pairs(s: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_some_and(|(_, c)| *c == '=') {
            chars.next();
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|(_, c)| *c == '\'') {
            chars.next();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let end = chars.peek().map_or(s.len(), |&(i, _)| i);
        out.push((key, value, s[start..end].trim_end().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out() {
        let (rest, t) = TlsSettings::split(
            "postgres://u:p@db.example:5432/inv?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/inv?application_name=x"
        );
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (rest, t) = TlsSettings::split("postgres://h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), t.mode),
            ("postgres://h/db", SslMode::Require)
        );
        let (rest, t) = TlsSettings::split("postgres://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), t.mode),
            ("postgres://h/db", SslMode::Prefer)
        );
    }

    #[test]
    fn key_value_parameters_are_taken_out() {
        let (rest, t) = TlsSettings::split(
            "host=h user=u sslmode=verify-ca sslrootcert='/a b/ca.pem' password='it\\'s' dbname=d",
        )
        .unwrap();
        assert_eq!(rest, "host=h user=u password='it\\'s' dbname=d");
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/a b/ca.pem")));
        let cfg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(cfg.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            TlsSettings::split("postgres://h/db?sslmode=verify")
                .unwrap_err()
                .to_string(),
            "sslmode `verify` is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        let (_, t) = TlsSettings::split(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap();
        let e = t.connector().unwrap_err().to_string();
        assert!(e.starts_with("sslrootcert /nonexistent/ca.pem: "), "{e}");
        let (_, t) = TlsSettings::split("postgres://h/db?sslcert=/c.pem").unwrap();
        assert_eq!(
            t.connector().unwrap_err().to_string(),
            "sslcert and sslkey go together: give both or neither"
        );
        assert!(TlsSettings::split("postgres://h/db?sslmode=disable")
            .unwrap()
            .1
            .connector()
            .unwrap()
            .is_none());
    }
}
