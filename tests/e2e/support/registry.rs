//! A stand-in for Confluent's Schema Registry, for the tests only.
//!
//! No Schema Registry server is installable from this machine's package registries: Confluent's
//! and Apicurio are JVM services distributed outside them, and Karapace is not published there.
//! So this small server follows the registry's REST API (paths, content type, JSON bodies and the
//! registry's error bodies and codes) closely enough for walrelay's client and for other clients
//! (the Python consumer in `tests/e2e/consume.py`) to be tested against it. It is not a registry:
//! it keeps everything in memory, knows Avro only, and has no deletes, references or modes.
//!
//! What it serves (Confluent's API v1):
//! * `POST /subjects/{subject}/versions`: register. A schema the subject already has returns its
//!   id; a new schema is checked against the subject's compatibility level (default `BACKWARD`)
//!   and refused with 409 when incompatible; ids are global (the same schema under two subjects
//!   has one id) and increasing. A malformed schema is refused with 422 / 42201.
//! * `POST /subjects/{subject}`: look up (404 / 40401 subject, 404 / 40403 schema).
//! * `GET /schemas/ids/{id}`, `GET /subjects`, `GET /subjects/{subject}/versions`,
//!   `GET /subjects/{subject}/versions/{version|latest}`.
//! * `GET|PUT /config` and `GET|PUT /config/{subject}` (compatibility levels).
//! * Optional basic or bearer authentication: 401 `{"error_code":401,"message":"Unauthorized"}`.
//!
//! Compatibility follows the Avro specification's schema resolution, through `apache-avro`'s
//! `SchemaCompatibility::can_read(writer, reader)`: under `BACKWARD` the new schema (reader) must
//! read data written with the latest one (writer); `FORWARD` is the reverse; `FULL` both;
//! `*_TRANSITIVE` against every earlier version; `NONE` checks nothing.
//!
//! It runs on its own threads with blocking sockets, so a separately spawned `walrelay` process
//! reaches it as well as the test's own client does. Each response closes its connection.
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use base64::Engine as _;
use serde_json::{json, Value};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const LEVELS: &[&str] = &[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

/// The credentials the test server demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestAuth {
    None,
    Basic { username: String, password: String },
    Bearer { token: String },
}

/// One request the server received (counted before authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    /// The path as sent, still percent-encoded, without the query.
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

/// A Schema-Registry-API stand-in on 127.0.0.1 (see the module documentation).
pub struct TestSchemaRegistry {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    auth: TestAuth,
    state: Mutex<State>,
    requests: Mutex<Vec<SeenRequest>>,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Schema texts (normalized), by id - 1.
    schemas: Vec<String>,
    /// Normalized schema text → id.
    ids: HashMap<String, u32>,
    /// Subject → ids of its versions, version n at n - 1.
    subjects: BTreeMap<String, Vec<u32>>,
    global_level: Option<String>,
    subject_levels: HashMap<String, String>,
}

impl TestSchemaRegistry {
    /// Starts a server without authentication.
    pub fn start() -> TestSchemaRegistry {
        Self::start_with(TestAuth::None)
    }

    /// Starts a server that demands `auth` on every request.
    pub fn start_with(auth: TestAuth) -> TestSchemaRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test schema registry");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            auth,
            state: Mutex::new(State::default()),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("test-schema-registry".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = accept_shared.clone();
                    std::thread::spawn(move || serve(&shared, conn));
                }
            })
            .expect("spawn the test schema registry");
        TestSchemaRegistry {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// How many requests had this method and (encoded) path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// The subjects with at least one version.
    pub fn subjects(&self) -> Vec<String> {
        let state = self.shared.state.lock().expect("state");
        state.subjects.keys().cloned().collect()
    }

    /// Sends one request to the server with a plain socket (no client library in between) and
    /// returns the status and the JSON body, for checking the API's shapes directly.
    /// It sends the credentials the server demands.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let auth = match &self.shared.auth {
            TestAuth::None => None,
            TestAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            TestAuth::Bearer { token } => Some(format!("Bearer {token}")),
        };
        self.call_with_authorization(method, path, body, auth.as_deref())
    }

    /// The latest schema registered under `subject`, parsed (panics when there is none).
    pub fn latest_schema(&self, subject: &str) -> Value {
        let (status, latest) =
            self.call("GET", &format!("/subjects/{subject}/versions/latest"), None);
        assert_eq!(status, 200, "latest version of {subject}: {latest}");
        serde_json::from_str(latest["schema"].as_str().expect("schema text")).expect("schema JSON")
    }

    /// [`call`](Self::call) with the given `Authorization` header value, or none.
    pub fn call_with_authorization(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        authorization: Option<&str>,
    ) -> (u16, Value) {
        let mut conn = TcpStream::connect(self.addr).expect("connect the test registry");
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {CONTENT_TYPE}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str(&format!("Content-Type: {CONTENT_TYPE}\r\n"));
        }
        if let Some(auth) = authorization {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).expect("send");
        conn.write_all(body.as_bytes()).expect("send");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read the answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(
            head.lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("content-type: {CONTENT_TYPE}"))),
            "{head}"
        );
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        (status, serde_json::from_str(body).expect("a JSON body"))
    }

    /// The schema registered under `id`, if any.
    pub fn schema(&self, id: u32) -> Option<String> {
        let state = self.shared.state.lock().expect("state");
        state.schemas.get(id as usize - 1).cloned()
    }
}

impl Drop for TestSchemaRegistry {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A parsed HTTP/1.1 request.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status and JSON body.
struct Response {
    status: u16,
    body: Value,
}

fn ok(body: Value) -> Response {
    Response { status: 200, body }
}

/// The registry's error body: `{"error_code":…,"message":…}`.
fn error(status: u16, error_code: u32, message: impl Into<String>) -> Response {
    Response {
        status,
        body: json!({"error_code": error_code, "message": message.into()}),
    }
}

fn serve(shared: &Shared, conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let response = match read_request(&mut reader) {
        Ok(Some(req)) => {
            shared.requests.lock().expect("requests").push(SeenRequest {
                method: req.method.clone(),
                path: req.path.clone(),
                content_type: req.header("content-type").map(str::to_string),
                body: req.body.clone(),
            });
            if authorized(&shared.auth, &req) {
                route(shared, &req)
            } else {
                error(401, 401, "Unauthorized")
            }
        }
        Ok(None) => return, // connection closed without a request
        Err(message) => error(400, 400, message),
    };
    write_response(write_half, &response);
}

fn read_request(reader: &mut impl BufRead) -> Result<Option<Request>, String> {
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {line:?}"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("malformed header {h:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: String::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        return Err("chunked request bodies are not supported by the test registry".into());
    }
    let length: usize = req
        .header("content-length")
        .map(|v| v.parse().map_err(|_| format!("bad Content-Length {v:?}")))
        .transpose()?
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    req.body = String::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    Ok(Some(req))
}

fn write_response(mut conn: TcpStream, response: &Response) {
    let body = response.body.to_string();
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        body.len()
    );
    if response.status == 401 {
        head.push_str("WWW-Authenticate: Basic realm=\"SchemaRegistry\"\r\n");
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
    let _ = conn.flush();
}

fn authorized(auth: &TestAuth, req: &Request) -> bool {
    let expected = match auth {
        TestAuth::None => return true,
        TestAuth::Basic { username, password } => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        ),
        TestAuth::Bearer { token } => format!("Bearer {token}"),
    };
    req.header("authorization") == Some(expected.as_str())
}

fn route(shared: &Shared, req: &Request) -> Response {
    let segments: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut state = shared.state.lock().expect("state");
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["subjects"]) => ok(json!(state.subjects.keys().collect::<Vec<_>>())),
        ("POST", ["subjects", subject, "versions"]) => register(&mut state, subject, &req.body),
        ("POST", ["subjects", subject]) => lookup(&state, subject, &req.body),
        ("GET", ["subjects", subject, "versions"]) => match state.subjects.get(*subject) {
            Some(ids) => ok(json!((1..=ids.len()).collect::<Vec<_>>())),
            None => subject_not_found(subject),
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            get_version(&state, subject, version)
        }
        ("GET", ["schemas", "ids", id]) => {
            match id
                .parse::<usize>()
                .ok()
                .and_then(|i| state.schemas.get(i.checked_sub(1)?))
            {
                Some(schema) => ok(json!({ "schema": schema })),
                None => error(404, 40403, format!("Schema {id} not found")),
            }
        }
        ("GET", ["config"]) => ok(json!({"compatibilityLevel": global_level(&state)})),
        ("PUT", ["config"]) => match parse_level(&req.body) {
            Ok(level) => {
                state.global_level = Some(level.clone());
                ok(json!({ "compatibility": level }))
            }
            Err(e) => e,
        },
        ("GET", ["config", subject]) => match state.subject_levels.get(*subject) {
            Some(level) => ok(json!({ "compatibilityLevel": level })),
            None if req.query.contains("defaultToGlobal=true") => {
                ok(json!({"compatibilityLevel": global_level(&state)}))
            }
            None => error(
                404,
                40408,
                format!("Subject '{subject}' does not have subject-level compatibility configured"),
            ),
        },
        ("PUT", ["config", subject]) => match parse_level(&req.body) {
            Ok(level) => {
                state
                    .subject_levels
                    .insert(subject.to_string(), level.clone());
                ok(json!({ "compatibility": level }))
            }
            Err(e) => e,
        },
        (
            _,
            ["subjects"]
            | ["subjects", _]
            | ["subjects", _, "versions"]
            | ["subjects", _, "versions", _]
            | ["schemas", "ids", _]
            | ["config"]
            | ["config", _],
        ) => error(405, 405, "HTTP 405 Method Not Allowed"),
        _ => error(404, 404, "HTTP 404 Not Found"),
    }
}

fn global_level(state: &State) -> String {
    state
        .global_level
        .clone()
        .unwrap_or_else(|| "BACKWARD".into())
}

fn subject_level(state: &State, subject: &str) -> String {
    state
        .subject_levels
        .get(subject)
        .cloned()
        .unwrap_or_else(|| global_level(state))
}

fn subject_not_found(subject: &str) -> Response {
    error(404, 40401, format!("Subject '{subject}' not found."))
}

fn parse_level(body: &str) -> Result<String, Response> {
    let level = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        v.get("compatibility")?
            .as_str()
            .map(str::to_ascii_uppercase)
    });
    match level {
        Some(level) if LEVELS.contains(&level.as_str()) => Ok(level),
        _ => Err(error(
            422,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, \
             backward_transitive, forward_transitive, and full_transitive",
        )),
    }
}

/// The schema of a register or lookup body, parsed, with its normalized text (compact JSON, so
/// that whitespace does not make a schema new).
fn parse_body_schema(body: &str) -> Result<(Schema, String), Response> {
    let request: Value = serde_json::from_str(body).map_err(|e| {
        error(
            400,
            400,
            format!("Unrecognized request body: {e}; expected {{\"schema\": \"...\"}}"),
        )
    })?;
    if let Some(kind) = request.get("schemaType").and_then(Value::as_str) {
        if kind != "AVRO" {
            return Err(error(
                422,
                42201,
                format!("Invalid schema type {kind}: the test registry knows only AVRO"),
            ));
        }
    }
    let Some(text) = request.get("schema").and_then(Value::as_str) else {
        return Err(error(422, 42201, "Empty schema"));
    };
    let invalid = |details: String| {
        error(
            422,
            42201,
            format!("Invalid schema {text} with refs [] of type AVRO, details: {details}"),
        )
    };
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let schema = Schema::parse(&value).map_err(|e| invalid(e.to_string()))?;
    Ok((schema, value.to_string()))
}

fn register(state: &mut State, subject: &str, body: &str) -> Response {
    let (schema, text) = match parse_body_schema(body) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let versions = state.subjects.get(subject).cloned().unwrap_or_default();
    // A schema the subject already has: its id, no compatibility check.
    if let Some(&id) = versions
        .iter()
        .find(|id| state.schemas[**id as usize - 1] == text)
    {
        return ok(json!({ "id": id }));
    }
    let level = subject_level(state, subject);
    if let Err((version, old, problem)) = check_compatibility(state, &versions, &schema, &level) {
        return error(
            409,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \
                 \"{subject}\", details: [{problem}, {{oldSchemaVersion: {version}}}, \
                 {{oldSchema: '{old}'}}, {{validateFields: 'false', compatibility: '{level}'}}]"
            ),
        );
    }
    let id = match state.ids.get(&text) {
        Some(&id) => id,
        None => {
            state.schemas.push(text.clone());
            let id = state.schemas.len() as u32;
            state.ids.insert(text, id);
            id
        }
    };
    state
        .subjects
        .entry(subject.to_string())
        .or_default()
        .push(id);
    ok(json!({ "id": id }))
}

/// Checks `new` against the versions the level names; on failure returns the old version, its
/// schema text and the problem in the registry's `{errorType:…, description:…}` form.
fn check_compatibility(
    state: &State,
    versions: &[u32],
    new: &Schema,
    level: &str,
) -> Result<(), (usize, String, String)> {
    let (backward, forward) = match level {
        "NONE" => return Ok(()),
        "BACKWARD" | "BACKWARD_TRANSITIVE" => (true, false),
        "FORWARD" | "FORWARD_TRANSITIVE" => (false, true),
        _ => (true, true),
    };
    let checked: Vec<usize> = if level.ends_with("_TRANSITIVE") {
        (1..=versions.len()).rev().collect()
    } else {
        // Only the latest version, if there is one.
        versions
            .len()
            .checked_sub(1)
            .map(|last| last + 1)
            .into_iter()
            .collect()
    };
    for version in checked {
        let old_text = &state.schemas[versions[version - 1] as usize - 1];
        let old = Schema::parse_str(old_text).expect("stored schemas parse");
        // BACKWARD: the new schema reads what the old one wrote.
        if backward {
            if let Err(e) = SchemaCompatibility::can_read(&old, new) {
                return Err((version, old_text.clone(), describe(&e, "new", "old")));
            }
        }
        // FORWARD: the old schema reads what the new one writes.
        if forward {
            if let Err(e) = SchemaCompatibility::can_read(new, &old) {
                return Err((version, old_text.clone(), describe(&e, "old", "new")));
            }
        }
    }
    Ok(())
}

/// A compatibility problem as the registry lists it; `reader` and `writer` say which of the two
/// schemas ("new", "old") played which part.
fn describe(e: &CompatibilityError, reader: &str, writer: &str) -> String {
    let (kind, description, info) = match e {
        CompatibilityError::MissingDefaultValue(field) => (
            "READER_FIELD_MISSING_DEFAULT_VALUE",
            format!(
                "The field '{field}' in the {reader} schema has no default value and is missing \
                 in the {writer} schema"
            ),
            field.clone(),
        ),
        CompatibilityError::FieldTypeMismatch(field, inner) => (
            "TYPE_MISMATCH",
            format!(
                "The type of the field '{field}' in the {reader} schema does not match the \
                 {writer} schema: {inner}"
            ),
            field.clone(),
        ),
        CompatibilityError::NameMismatch {
            writer_name,
            reader_name,
        } => (
            "NAME_MISMATCH",
            format!("The {reader} schema's name {reader_name} does not match the {writer} schema's {writer_name}"),
            reader_name.clone(),
        ),
        CompatibilityError::MissingSymbols => (
            "MISSING_ENUM_SYMBOLS",
            format!("The {reader} schema's enum lacks symbols of the {writer} schema's"),
            String::new(),
        ),
        CompatibilityError::MissingUnionElements => (
            "MISSING_UNION_BRANCH",
            format!("The {reader} schema's union cannot read a branch of the {writer} schema's"),
            String::new(),
        ),
        CompatibilityError::FixedMismatch => (
            "FIXED_SIZE_MISMATCH",
            format!("The {reader} schema's fixed differs in name or size from the {writer} schema's"),
            String::new(),
        ),
        other => (
            "TYPE_MISMATCH",
            format!("The {reader} schema cannot read the {writer} schema: {other}"),
            String::new(),
        ),
    };
    format!("{{errorType:'{kind}', description:'{description}', additionalInfo:'{info}'}}")
}

fn lookup(state: &State, subject: &str, body: &str) -> Response {
    let (_, text) = match parse_body_schema(body) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let Some(versions) = state.subjects.get(subject) else {
        return subject_not_found(subject);
    };
    match versions
        .iter()
        .position(|id| state.schemas[*id as usize - 1] == text)
    {
        Some(i) => ok(json!({
            "subject": subject,
            "version": i + 1,
            "id": versions[i],
            "schema": text,
        })),
        None => error(404, 40403, "Schema not found"),
    }
}

fn get_version(state: &State, subject: &str, version: &str) -> Response {
    let Some(versions) = state.subjects.get(subject) else {
        return subject_not_found(subject);
    };
    let n = match version {
        "latest" | "-1" => versions.len(),
        v => match v.parse::<usize>() {
            Ok(n) if (1..=i32::MAX as usize).contains(&n) => n,
            _ => {
                return error(
                    422,
                    42202,
                    format!(
                        "The specified version '{v}' is not a valid version id. Allowed values \
                         are between [1, 2^31-1] and the string \"latest\""
                    ),
                )
            }
        },
    };
    match versions.get(n - 1) {
        Some(id) => ok(json!({
            "subject": subject,
            "version": n,
            "id": id,
            "schema": state.schemas[*id as usize - 1],
        })),
        None => error(404, 40402, format!("Version {n} not found.")),
    }
}
