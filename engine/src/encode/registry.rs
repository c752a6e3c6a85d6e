//! A client of Confluent's Schema Registry REST API, for the Avro encoder: the registry hands out
//! the schema ids that Confluent's wire format puts in front of every Avro datum.
//!
//! What it does, as Confluent's own Avro serializer does it:
//! * [`SchemaRegistry::id_for`] registers a schema under a subject (`POST
//!   /subjects/{subject}/versions`) when `auto_register` is on (the default, like the serializer's
//!   `auto.register.schemas=true`), and otherwise only looks it up (`POST /subjects/{subject}`).
//!   Avro schemas are sent as `{"schema":"<schema JSON>"}`, without `schemaType` (Avro is the
//!   registry's default type).
//! * [`SchemaRegistry::schema_by_id`] fetches a writer schema (`GET /schemas/ids/{id}`).
//! * Both answers are cached for the life of the process, and concurrent calls for the same key
//!   share one request, so a schema costs one registry request per process.
//! * Requests carry `Content-Type: application/vnd.schemaregistry.v1+json`; subject names are
//!   percent-encoded as one URL path segment.
//! * With several URLs, a request that cannot reach one URL (connection refused, DNS, timeout)
//!   goes to the next; the URL that answered last is tried first next time. An HTTP answer,
//!   whatever its status, ends the request.
//!
//! Errors ([`RegistryError`]) name the registry URL, the subject or id, the HTTP status, the
//! registry's `error_code` and message, and the fix. [`RegistryError::is_transient`] tells the
//! pipeline what is worth retrying: unreachable registries and 5xx answers are; refusals are not.
//!
//! HTTP runs on [`ureq`], a blocking client, on tokio's blocking pool: registry calls are rare
//! (one per schema per process), so an async HTTP stack would buy nothing. HTTPS goes through
//! native-tls (the OpenSSL rdkafka links already) with the system's CA store; `HTTPS_PROXY`,
//! `HTTP_PROXY` and `NO_PROXY` from the environment are honoured.
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::sync::OnceCell;

/// The registry's content type (API version 1, JSON), sent with every request body.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the client accepts, in the registry's order of preference.
const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// Bytes kept of a response body that is not the registry's JSON (an HTML error page of a proxy).
const MAX_QUOTED_BODY: usize = 300;

/// Characters left as they are in a path segment: RFC 3986's unreserved set. Everything else in a
/// subject name (`/`, `%`, `?`, `#`, spaces, non-ASCII) is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The subject of a topic's record keys under Confluent's default `TopicNameStrategy`.
pub fn key_subject(topic: &str) -> String {
    format!("{topic}-key")
}

/// The subject of a topic's record values under Confluent's default `TopicNameStrategy`.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The 5 bytes Confluent's wire format puts before an Avro datum: magic byte `0`, then the schema
/// id as a big-endian 32-bit integer.
pub fn wire_header(schema_id: u32) -> [u8; 5] {
    let id = schema_id.to_be_bytes();
    [0, id[0], id[1], id[2], id[3]]
}

/// How the client authenticates to the registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    /// HTTP basic authentication (the serializer's `basic.auth.user.info=username:password`).
    Basic { username: String, password: String },
    /// A bearer token (the serializer's `bearer.auth.token`).
    Bearer { token: String },
}

impl RegistryAuth {
    /// The `Authorization` header value, if any.
    pub fn header_value(&self) -> Option<String> {
        match self {
            RegistryAuth::None => None,
            RegistryAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            RegistryAuth::Bearer { token } => Some(format!("Bearer {token}")),
        }
    }

    /// What was sent, for error messages (never the secret itself).
    fn describe(&self) -> &'static str {
        match self {
            RegistryAuth::None => "no credentials were sent: configure basic_auth or bearer_token",
            RegistryAuth::Basic { .. } => "check the basic_auth username and password",
            RegistryAuth::Bearer { .. } => "check the bearer token",
        }
    }
}

/// Secrets stay out of logs and error messages.
impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::None => f.write_str("None"),
            RegistryAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            RegistryAuth::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Where the registry is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Base URLs (`http://host:8081`, or with a path prefix). An entry may hold several URLs
    /// separated by commas, as Confluent's `schema.registry.url` does. Tried in turn when one
    /// cannot be reached.
    pub urls: Vec<String>,
    pub auth: RegistryAuth,
    /// Register schemas that are not registered yet (`true`, the default, like the serializer's
    /// `auto.register.schemas`), or only look them up and fail when they are missing.
    pub auto_register: bool,
    /// The limit on one request to one URL, connecting included.
    pub timeout: Duration,
}

impl RegistrySettings {
    /// The timeout when none is configured.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Settings for `urls` with the defaults: no credentials, auto-registration, 30 s timeout.
    pub fn new(urls: Vec<String>) -> Self {
        RegistrySettings {
            urls,
            auth: RegistryAuth::None,
            auto_register: true,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Everything that can go wrong talking to the registry. Each message names the URL, the subject
/// or schema id, what the registry said, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry settings: {0}")]
    Settings(String),

    #[error(
        "schema registry unreachable while {during}: {attempts} \
         (check the registry URLs and that the registry is running; the relay retries)"
    )]
    Unreachable {
        during: String,
        /// Each URL tried, with why it failed.
        attempts: String,
        transient: bool,
    },

    #[error(
        "schema registry {url} refused the new schema of subject `{subject}` (HTTP 409{code}): \
         it is not compatible with the latest registered version under the subject's \
         compatibility level. The registry says: {message}. Fix: make the table change \
         compatible (under BACKWARD, the default, a new column needs a default or must be \
         nullable, and a column's type may only widen), or relax the level for this subject \
         (PUT /config/{subject_path} with {{\"compatibility\":\"NONE\"}}), or publish to a new topic",
        code = code_suffix(*error_code),
        subject_path = escape_segment(subject)
    )]
    Incompatible {
        url: String,
        subject: String,
        error_code: Option<i64>,
        message: String,
    },

    #[error(
        "schema registry {url} refused the schema of subject `{subject}` as invalid \
         (HTTP 422{code}): {message}. This is a bug in walrelay's Avro schema; please report it \
         with the table's definition",
        code = code_suffix(*error_code)
    )]
    InvalidSchema {
        url: String,
        subject: String,
        error_code: Option<i64>,
        message: String,
    },

    #[error(
        "schema registry {url}: the schema is not registered under subject `{subject}` \
         (HTTP 404{code}): {message}. auto_register is off, so walrelay only looks schemas up: \
         register the schema under `{subject}` first, or turn auto_register on",
        code = code_suffix(*error_code)
    )]
    NotRegistered {
        url: String,
        subject: String,
        error_code: Option<i64>,
        message: String,
    },

    #[error(
        "schema registry {url} has no schema with id {id} (HTTP 404{code}): {message}. \
         Was the registry's storage reset, or is this another registry than the producer's?",
        code = code_suffix(*error_code)
    )]
    UnknownId {
        url: String,
        id: u32,
        error_code: Option<i64>,
        message: String,
    },

    #[error(
        "schema registry {url} refused the credentials while {during} (HTTP {status}{code}): \
         {message}. {hint}",
        code = code_suffix(*error_code),
        hint = if *status == 403 {
            "The identity is known but lacks permission on this subject: grant it, or check \
             that basic_auth or bearer_token name the right identity"
        } else {
            auth_hint
        }
    )]
    Auth {
        url: String,
        during: String,
        status: u16,
        error_code: Option<i64>,
        message: String,
        auth_hint: &'static str,
    },

    #[error(
        "schema registry {url} failed while {during} (HTTP {status}{code}): {message}. {hint} \
         (the relay retries)",
        code = code_suffix(*error_code),
        hint = server_hint(*error_code)
    )]
    Server {
        url: String,
        during: String,
        status: u16,
        error_code: Option<i64>,
        message: String,
    },

    #[error(
        "schema registry {url} answered HTTP {status}{code} while {during}: {message}. \
         Is this URL a Schema Registry (with any path prefix it is served under)?",
        code = code_suffix(*error_code)
    )]
    Status {
        url: String,
        during: String,
        status: u16,
        error_code: Option<i64>,
        message: String,
    },

    #[error(
        "schema registry {url} answered HTTP {status} while {during} with a body that is not \
         the registry's JSON ({reason}): {body:?}. Is this URL a Schema Registry?"
    )]
    BadResponse {
        url: String,
        during: String,
        status: u16,
        reason: String,
        body: String,
    },
}

fn code_suffix(code: Option<i64>) -> String {
    code.map(|c| format!(", error_code {c}"))
        .unwrap_or_default()
}

fn server_hint(code: Option<i64>) -> &'static str {
    match code {
        Some(50001) => "The registry's backend store (its Kafka topic) failed",
        Some(50002) => "The operation timed out inside the registry",
        Some(50003) => "The registry could not forward the request to its primary instance",
        Some(50004) => "The registry does not know its primary instance",
        _ => "The registry had an internal error",
    }
}

impl RegistryError {
    /// Whether retrying later may succeed: an unreachable registry, a timeout, a 5xx answer or a
    /// rate limit (429). Refusals (401/403, 404, 409, 422) and bad settings are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { transient, .. } => *transient,
            RegistryError::Server { .. } => true,
            RegistryError::Status { status, .. } => *status == 429,
            RegistryError::BadResponse { status, .. } => *status >= 500,
            RegistryError::Settings(_)
            | RegistryError::Incompatible { .. }
            | RegistryError::InvalidSchema { .. }
            | RegistryError::NotRegistered { .. }
            | RegistryError::UnknownId { .. }
            | RegistryError::Auth { .. } => false,
        }
    }
}

/// The key of the id cache: (subject, schema text).
type SubjectSchema = (String, String);

/// A Schema Registry client with caches; share one per process (it is `Send + Sync`).
pub struct SchemaRegistry {
    http: Arc<Http>,
    auto_register: bool,
    ids: Mutex<HashMap<SubjectSchema, Arc<OnceCell<u32>>>>,
    /// id → schema text.
    schemas: Mutex<HashMap<u32, Arc<OnceCell<String>>>>,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("urls", &self.http.bases)
            .field("auto_register", &self.auto_register)
            .finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// Checks the settings; connects to nothing yet.
    pub fn new(settings: RegistrySettings) -> Result<Self, RegistryError> {
        let bases = parse_urls(&settings.urls)?;
        if settings.timeout.is_zero() {
            return Err(RegistryError::Settings(
                "the timeout must be greater than zero".into(),
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            // native-tls with the system's CA store (OpenSSL's default paths).
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .tls_config(tls)
            .user_agent(concat!("walrelay/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(SchemaRegistry {
            http: Arc::new(Http {
                agent: ureq::Agent::new_with_config(config),
                bases,
                authorization: settings.auth.header_value(),
                auth_hint: settings.auth.describe(),
                preferred: AtomicUsize::new(0),
            }),
            auto_register: settings.auto_register,
            ids: Mutex::new(HashMap::new()),
            schemas: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's id of the Avro schema `schema_json` under `subject`: registered when
    /// `auto_register` is on (registering a schema the subject already has returns its id), looked
    /// up otherwise. Cached: one request per (subject, schema) per process.
    pub async fn id_for(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        let cell = {
            let mut ids = self.ids.lock().expect("registry id cache");
            ids.entry((subject.to_string(), schema_json.to_string()))
                .or_default()
                .clone()
        };
        let id = *cell
            .get_or_try_init(|| self.request_id(subject, schema_json))
            .await?;
        // The text is known now: a later schema_by_id(id) needs no request.
        let schema_cell = self.schema_cell(id);
        let _ = schema_cell.set(schema_json.to_string());
        Ok(id)
    }

    /// The schema text registered under `id` (`GET /schemas/ids/{id}`). Cached.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let cell = self.schema_cell(id);
        cell.get_or_try_init(|| self.request_schema(id))
            .await
            .cloned()
    }

    fn schema_cell(&self, id: u32) -> Arc<OnceCell<String>> {
        let mut schemas = self.schemas.lock().expect("registry schema cache");
        schemas.entry(id).or_default().clone()
    }

    async fn request_id(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        let (path, op) = if self.auto_register {
            (register_path(subject), Op::Register(subject.to_string()))
        } else {
            (lookup_path(subject), Op::Lookup(subject.to_string()))
        };
        let body = serde_json::json!({ "schema": schema_json }).to_string();
        let reply = self
            .http
            .clone()
            .send(path, Some(body), op.during())
            .await?;
        let value = reply.success(&op)?;
        match value.get("id").and_then(serde_json::Value::as_u64) {
            Some(id) if id <= u64::from(u32::MAX) => Ok(id as u32),
            _ => Err(reply.bad_response(&op, "no 32-bit `id` in the answer")),
        }
    }

    async fn request_schema(&self, id: u32) -> Result<String, RegistryError> {
        let op = Op::ById(id);
        let reply = self
            .http
            .clone()
            .send(schema_path(id), None, op.during())
            .await?;
        let value = reply.success(&op)?;
        match value.get("schema").and_then(serde_json::Value::as_str) {
            Some(schema) => Ok(schema.to_string()),
            None => Err(reply.bad_response(&op, "no `schema` string in the answer")),
        }
    }
}

/// What a request was for: decides how an error status reads.
enum Op {
    Register(String),
    Lookup(String),
    ById(u32),
}

impl Op {
    fn during(&self) -> String {
        match self {
            Op::Register(s) => format!("registering a schema under subject `{s}`"),
            Op::Lookup(s) => format!("looking up a schema under subject `{s}`"),
            Op::ById(id) => format!("fetching the schema with id {id}"),
        }
    }
}

/// `POST /subjects/{subject}/versions`: register (or find) a schema under a subject.
fn register_path(subject: &str) -> String {
    format!("/subjects/{}/versions", escape_segment(subject))
}

/// `POST /subjects/{subject}`: look a schema up under a subject.
fn lookup_path(subject: &str) -> String {
    format!("/subjects/{}", escape_segment(subject))
}

/// `GET /schemas/ids/{id}`.
fn schema_path(id: u32) -> String {
    format!("/schemas/ids/{id}")
}

fn escape_segment(s: &str) -> String {
    utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

/// Splits comma-separated entries, checks each is an http(s) URL with a host, and drops a
/// trailing `/`.
fn parse_urls(urls: &[String]) -> Result<Vec<String>, RegistryError> {
    let mut bases = Vec::new();
    for url in urls.iter().flat_map(|u| u.split(',')).map(str::trim) {
        if url.is_empty() {
            continue;
        }
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                RegistryError::Settings(format!(
                    "`{url}` is not an http:// or https:// URL (for example http://127.0.0.1:8081)"
                ))
            })?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            return Err(RegistryError::Settings(format!(
                "`{url}` has no host, or carries credentials in the URL: give host[:port], \
                 and credentials with basic_auth"
            )));
        }
        if rest.contains(['?', '#']) {
            return Err(RegistryError::Settings(format!(
                "`{url}` has a query or fragment: give only scheme, host, port and path prefix"
            )));
        }
        bases.push(url.trim_end_matches('/').to_string());
    }
    if bases.is_empty() {
        return Err(RegistryError::Settings(
            "no registry URL given (for example http://127.0.0.1:8081)".into(),
        ));
    }
    Ok(bases)
}

/// The HTTP side: the agent, the URLs, the credentials, and which URL answered last.
struct Http {
    agent: ureq::Agent,
    bases: Vec<String>,
    authorization: Option<String>,
    auth_hint: &'static str,
    preferred: AtomicUsize,
}

/// An HTTP answer of one URL.
struct Reply {
    url: String,
    status: u16,
    body: String,
    /// What to check when the registry refuses the credentials.
    auth_hint: &'static str,
}

impl Http {
    /// POSTs `body` (or GETs without one) to `path` on each URL in turn until one answers.
    async fn send(
        self: Arc<Self>,
        path: String,
        body: Option<String>,
        during: String,
    ) -> Result<Reply, RegistryError> {
        tokio::task::spawn_blocking(move || self.send_blocking(&path, body.as_deref(), during))
            .await
            .unwrap_or_else(|e| {
                Err(RegistryError::Unreachable {
                    during: "calling the registry".into(),
                    attempts: format!("the request task failed: {e}"),
                    transient: true,
                })
            })
    }

    fn send_blocking(
        &self,
        path: &str,
        body: Option<&str>,
        during: String,
    ) -> Result<Reply, RegistryError> {
        let n = self.bases.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut attempts = Vec::new();
        let mut transient = false;
        for i in 0..n {
            let index = (start + i) % n;
            let url = format!("{}{path}", self.bases[index]);
            match self.call(&url, body) {
                Ok((status, body)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(Reply {
                        url,
                        status,
                        body,
                        auth_hint: self.auth_hint,
                    });
                }
                Err(e) => {
                    transient |= is_transient_transport(&e);
                    attempts.push(format!("{url}: {e}"));
                }
            }
        }
        Err(RegistryError::Unreachable {
            during,
            attempts: attempts.join("; "),
            transient,
        })
    }

    fn call(&self, url: &str, body: Option<&str>) -> Result<(u16, String), ureq::Error> {
        let mut response = match body {
            Some(body) => {
                let mut req = self
                    .agent
                    .post(url)
                    .header("Accept", ACCEPT)
                    .header("Content-Type", CONTENT_TYPE);
                if let Some(auth) = &self.authorization {
                    req = req.header("Authorization", auth);
                }
                req.send(body)?
            }
            None => {
                let mut req = self.agent.get(url).header("Accept", ACCEPT);
                if let Some(auth) = &self.authorization {
                    req = req.header("Authorization", auth);
                }
                req.call()?
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        Ok((status, text))
    }
}

/// Connection trouble and timeouts pass; a bad URL or TLS setup does not.
fn is_transient_transport(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

/// The registry's error body: `{"error_code": 40401, "message": "Subject 'x' not found."}`.
#[derive(Debug, PartialEq, Eq)]
struct ApiError {
    error_code: Option<i64>,
    message: String,
}

/// Reads an error body; a body that is not the registry's JSON is quoted (shortened).
fn parse_error_body(body: &str) -> ApiError {
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(body) {
        let error_code = obj.get("error_code").and_then(serde_json::Value::as_i64);
        if let Some(message) = obj.get("message").and_then(serde_json::Value::as_str) {
            return ApiError {
                error_code,
                message: message.to_string(),
            };
        }
        if error_code.is_some() {
            return ApiError {
                error_code,
                message: "(no message)".into(),
            };
        }
    }
    ApiError {
        error_code: None,
        message: if body.trim().is_empty() {
            "(empty body)".into()
        } else {
            format!("{:?}", shorten(body.trim()))
        },
    }
}

fn shorten(s: &str) -> &str {
    if s.len() <= MAX_QUOTED_BODY {
        return s;
    }
    let mut end = MAX_QUOTED_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Reply {
    /// The JSON of a 2xx answer, or the typed error of any other.
    fn success(&self, op: &Op) -> Result<serde_json::Value, RegistryError> {
        if (200..300).contains(&self.status) {
            return serde_json::from_str(&self.body)
                .map_err(|e| self.bad_response(op, &format!("invalid JSON: {e}")));
        }
        Err(self.error(op))
    }

    fn bad_response(&self, op: &Op, reason: &str) -> RegistryError {
        RegistryError::BadResponse {
            url: self.url.clone(),
            during: op.during(),
            status: self.status,
            reason: reason.to_string(),
            body: shorten(&self.body).to_string(),
        }
    }

    fn error(&self, op: &Op) -> RegistryError {
        let ApiError {
            error_code,
            message,
        } = parse_error_body(&self.body);
        let url = self.url.clone();
        let status = self.status;
        match (status, error_code, op) {
            (401 | 403, ..) => RegistryError::Auth {
                url,
                during: op.during(),
                status,
                error_code,
                message,
                auth_hint: self.auth_hint,
            },
            (409, _, Op::Register(subject)) => RegistryError::Incompatible {
                url,
                subject: subject.clone(),
                error_code,
                message,
            },
            (422, Some(42201) | None, Op::Register(subject) | Op::Lookup(subject)) => {
                RegistryError::InvalidSchema {
                    url,
                    subject: subject.clone(),
                    error_code,
                    message,
                }
            }
            (404, Some(40401 | 40403), Op::Lookup(subject)) => RegistryError::NotRegistered {
                url,
                subject: subject.clone(),
                error_code,
                message,
            },
            (404, Some(40403), Op::ById(id)) => RegistryError::UnknownId {
                url,
                id: *id,
                error_code,
                message,
            },
            (500.., ..) => RegistryError::Server {
                url,
                during: op.during(),
                status,
                error_code,
                message,
            },
            _ => RegistryError::Status {
                url,
                during: op.during(),
                status,
                error_code,
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_escaped_as_one_path_segment() {
        assert_eq!(
            register_path("inventory.public.products-value"),
            "/subjects/inventory.public.products-value/versions"
        );
        assert_eq!(
            lookup_path("a/b c?d#e%f"),
            "/subjects/a%2Fb%20c%3Fd%23e%25f"
        );
        assert_eq!(lookup_path("ünï~_"), "/subjects/%C3%BCn%C3%AF~_");
        assert_eq!(schema_path(42), "/schemas/ids/42");
        assert_eq!(key_subject("pg.public.t"), "pg.public.t-key");
        assert_eq!(value_subject("pg.public.t"), "pg.public.t-value");
    }

    #[test]
    fn urls_are_split_checked_and_trimmed() {
        let bases = parse_urls(&[
            "http://a:8081/, https://b:8081/registry/".into(),
            "http://c:8081".into(),
        ])
        .expect("valid");
        assert_eq!(
            bases,
            ["http://a:8081", "https://b:8081/registry", "http://c:8081"]
        );
        for bad in [
            "a:8081",
            "ftp://a",
            "http://",
            "http://u:p@a:8081",
            "http://a/?x=1",
        ] {
            let e = parse_urls(&[bad.into()]).expect_err(bad);
            assert!(matches!(e, RegistryError::Settings(_)), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(matches!(
            parse_urls(&[" , ".into()]),
            Err(RegistryError::Settings(_))
        ));
    }

    #[test]
    fn settings_are_checked_by_new() {
        let mut s = RegistrySettings::new(vec!["http://127.0.0.1:1".into()]);
        assert!(s.auto_register);
        assert_eq!(s.timeout, Duration::from_secs(30));
        SchemaRegistry::new(s.clone()).expect("valid settings");
        s.timeout = Duration::ZERO;
        assert!(SchemaRegistry::new(s).is_err());
        assert!(SchemaRegistry::new(RegistrySettings::new(vec![])).is_err());
    }

    #[test]
    fn auth_headers_and_redaction() {
        assert_eq!(RegistryAuth::None.header_value(), None);
        let basic = RegistryAuth::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        // RFC 7617's example.
        assert_eq!(
            basic.header_value().as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        let bearer = RegistryAuth::Bearer {
            token: "t0k3n".into(),
        };
        assert_eq!(bearer.header_value().as_deref(), Some("Bearer t0k3n"));
        let shown = format!("{basic:?} {bearer:?}");
        assert!(shown.contains("Aladdin"), "{shown}");
        assert!(
            !shown.contains("open sesame") && !shown.contains("t0k3n"),
            "{shown}"
        );
    }

    #[test]
    fn wire_header_is_magic_byte_and_big_endian_id() {
        assert_eq!(wire_header(1), [0, 0, 0, 0, 1]);
        assert_eq!(wire_header(0x0102_0304), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn error_bodies_are_parsed() {
        assert_eq!(
            parse_error_body(r#"{"error_code":40401,"message":"Subject 'x' not found."}"#),
            ApiError {
                error_code: Some(40401),
                message: "Subject 'x' not found.".into()
            }
        );
        let html = parse_error_body("<html>502 Bad Gateway</html>");
        assert_eq!(html.error_code, None);
        assert_eq!(html.message, r#""<html>502 Bad Gateway</html>""#);
        assert_eq!(parse_error_body("").message, "(empty body)");
        let long = "é".repeat(400);
        assert!(parse_error_body(&long).message.len() <= MAX_QUOTED_BODY + 2);
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            url: "http://sr:8081/subjects/t-value/versions".into(),
            status,
            body: body.into(),
            auth_hint: RegistryAuth::None.describe(),
        }
    }

    #[test]
    fn statuses_become_typed_errors() {
        let register = Op::Register("t-value".into());
        let lookup = Op::Lookup("t-value".into());

        let e = reply(
            409,
            r#"{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema for subject \"t-value\", details: []"}"#,
        )
        .error(&register);
        let text = e.to_string();
        assert!(matches!(e, RegistryError::Incompatible { .. }), "{e:?}");
        assert!(!e.is_transient());
        for part in [
            "http://sr:8081/subjects/t-value/versions",
            "subject `t-value`",
            "HTTP 409, error_code 409",
            "incompatible with an earlier schema for subject \"t-value\"",
            "PUT /config/t-value",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }

        let e = reply(422, r#"{"error_code":42201,"message":"Invalid schema"}"#).error(&register);
        assert!(matches!(e, RegistryError::InvalidSchema { .. }), "{e:?}");
        assert!(!e.is_transient());

        let e = reply(
            404,
            r#"{"error_code":40401,"message":"Subject 't-value' not found."}"#,
        )
        .error(&lookup);
        assert!(matches!(e, RegistryError::NotRegistered { .. }), "{e:?}");
        assert!(e.to_string().contains("auto_register"), "{e}");
        let e = reply(404, r#"{"error_code":40403,"message":"Schema not found"}"#).error(&lookup);
        assert!(matches!(e, RegistryError::NotRegistered { .. }), "{e:?}");

        let e = reply(
            404,
            r#"{"error_code":40403,"message":"Schema 7 not found"}"#,
        )
        .error(&Op::ById(7));
        assert!(matches!(e, RegistryError::UnknownId { id: 7, .. }), "{e:?}");

        for status in [401, 403] {
            let e = reply(status, r#"{"error_code":401,"message":"Unauthorized"}"#).error(&lookup);
            assert!(matches!(e, RegistryError::Auth { .. }), "{e:?}");
            assert!(!e.is_transient());
        }

        let e = reply(
            500,
            r#"{"error_code":50001,"message":"Error while registering schema"}"#,
        )
        .error(&register);
        assert!(e.is_transient());
        assert!(e.to_string().contains("backend store"), "{e}");
        let e = reply(503, "<html>upstream down</html>").error(&register);
        assert!(matches!(e, RegistryError::Server { .. }) && e.is_transient());
        assert!(e.to_string().contains("upstream down"), "{e}");

        let e = reply(429, "").error(&register);
        assert!(matches!(e, RegistryError::Status { .. }) && e.is_transient());
        let e = reply(400, r#"{"error_code":400,"message":"Bad Request"}"#).error(&register);
        assert!(matches!(e, RegistryError::Status { .. }) && !e.is_transient());
    }

    #[test]
    fn success_bodies_are_checked() {
        let op = Op::ById(3);
        assert_eq!(
            reply(200, r#"{"schema":"\"string\""}"#)
                .success(&op)
                .expect("ok")["schema"],
            "\"string\""
        );
        let e = reply(200, "<html>").success(&op).expect_err("not JSON");
        assert!(matches!(e, RegistryError::BadResponse { .. }), "{e:?}");
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn unreachable_urls_are_all_tried_and_transient() {
        // Two closed ports on loopback: connection refused at once.
        let closed = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("addr").port();
            drop(l);
            format!("http://127.0.0.1:{port}")
        };
        let (a, b) = (closed(), closed());
        let mut settings = RegistrySettings::new(vec![a.clone(), b.clone()]);
        settings.timeout = Duration::from_secs(5);
        let registry = SchemaRegistry::new(settings).expect("settings");
        let e = registry
            .id_for("t-value", r#""string""#)
            .await
            .expect_err("nothing listens");
        assert!(e.is_transient(), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&a) && text.contains(&b), "{text}");
        assert!(text.contains("subject `t-value`"), "{text}");
    }
}
