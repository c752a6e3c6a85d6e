//! Shared helpers of the end-to-end tests: the real services, throwaway databases, the relay as a
//! child process, a topic reader, and condition waits (never fixed sleeps).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio_postgres::{Client, NoTls};

pub mod cluster;
pub mod json_order;
pub mod murmur2;
pub mod registry;

/// Where the services are, as `scripts/services env` prints them.
pub struct Services {
    pub pg_url: String,
    pub brokers: String,
    pub tansu_bin: PathBuf,
    pub repo: PathBuf,
    /// The CA that signed the PostgreSQL server's certificate (for IP 127.0.0.1).
    pub pg_ca: PathBuf,
    /// A CA that signed nothing the server has.
    pub pg_other_ca: PathBuf,
    /// PostgreSQL's programs (pg_recvlogical, psql).
    pub pg_bin: PathBuf,
}

/// Starts the services once per test binary (idempotent: running ones are reused).
pub fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repo root")
            .to_path_buf();
        let out = Command::new(repo.join("scripts/services"))
            .arg("up")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/services up");
        assert!(out.status.success(), "scripts/services up failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let vars: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .collect();
        drop_leftover_slots(&vars);
        Services {
            pg_url: vars["WALRELAY_PG_URL"].to_string(),
            brokers: vars["WALRELAY_KAFKA_BROKERS"].to_string(),
            tansu_bin: PathBuf::from(vars["WALRELAY_TANSU_BIN"]),
            repo,
            pg_ca: PathBuf::from(vars["WALRELAY_PG_CA"]),
            pg_other_ca: PathBuf::from(vars["WALRELAY_PG_OTHER_CA"]),
            pg_bin: PathBuf::from(vars["WALRELAY_PG_BIN"]),
        }
    })
}

/// Drops the inactive replication slots earlier test runs left (named by [`unique`] with another
/// process id): they would hold WAL and use up `max_replication_slots` on a long-lived cluster.
fn drop_leftover_slots(vars: &BTreeMap<&str, &str>) {
    let psql = Path::new(vars["WALRELAY_PG_BIN"]).join("psql");
    let sql = format!(
        "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots \
         WHERE NOT active AND slot_name ~ '_[0-9]+_[0-9]+$' AND slot_name !~ '_{}_[0-9]+$'",
        std::process::id()
    );
    let out = Command::new(psql)
        .args([vars["WALRELAY_PG_URL"], "-Atc", &sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "dropping leftover slots failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name unique to this test run: `prefix_<pid>_<n>`, valid as database, slot and topic name.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits until `check` returns `Some`, polling every 50 ms; panics with `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A throwaway database.
pub struct Db {
    pub name: String,
    pub url: String,
    pub client: Client,
}

impl Db {
    pub async fn create(prefix: &str) -> Db {
        let s = services();
        let name = unique(prefix);
        let admin = connect(&s.pg_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let url = s
            .pg_url
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{name}"))
            .expect("url");
        let client = connect(&url).await;
        Db { name, url, client }
    }

    pub async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| match e.as_db_error() {
                Some(db) => panic!("{sql}: {}: {}", db.code().code(), db.message()),
                None => panic!("{sql}: {e}"),
            });
    }

    /// The server's current WAL write position.
    pub async fn current_wal_lsn(&self) -> walrelay::event::Lsn {
        let row = self
            .client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .expect("pg_current_wal_lsn");
        walrelay::event::Lsn::parse(row.get::<_, &str>(0)).expect("an LSN")
    }

    /// The pid of the walsender that holds `slot`, if one does.
    pub async fn active_walsender(&self, slot: &str) -> Option<i32> {
        self.client
            .query_one(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .ok()?
            .get(0)
    }

    /// The slot's confirmed_flush_lsn as text, if the slot exists.
    pub async fn confirmed_flush(&self, slot: &str) -> Option<String> {
        self.client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slot query")
            .and_then(|r| r.get(0))
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Runs a build script of the repository and returns the directory it prints last.
fn built_by(script: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let out = Command::new(repo.join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(out.status.success(), "{script} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        text.lines()
            .last()
            .expect("the script prints its output directory")
            .trim(),
    )
}

/// The directory of built plugin components (`scripts/build-plugins`, run once per test binary).
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built_by("scripts/build-plugins"))
}

/// The directory of the other-language example components (`scripts/build-language-plugins`,
/// run once per test binary; its first run on a machine installs the toolchains).
pub fn language_plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built_by("scripts/build-language-plugins"))
}

/// `sha256sum` of a file: the YAML pin of a component.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

/// A fresh directory for one test's files.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("walrelay-e2e")
        .join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A built component by crate name, e.g. `mask` or `guest-loop`.
pub fn component(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "no component {}", path.display());
    path
}

/// The `walrelay` binary, built by cargo for this workspace's profile.
pub fn relay_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repo root");
        // The test binary lives in <target>/<profile>/deps/; walrelay in <target>/<profile>/.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile dir");
        let bin = profile_dir.join("walrelay");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .current_dir(repo)
            .args(["build", "-p", "walrelay", "--bin", "walrelay"]);
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build walrelay");
        assert!(status.success(), "building walrelay failed");
        assert!(bin.exists(), "no walrelay binary at {}", bin.display());
        bin
    })
}

/// A running relay process.
pub struct Relay {
    pub child: Child,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra environment of the relay process.
    pub env: Vec<(String, String)>,
}

impl Relay {
    /// Writes `yaml` to a fresh directory and runs `walrelay run --config` on it.
    pub fn start(name: &str, yaml: &str) -> Relay {
        let dir = std::env::temp_dir().join("walrelay-e2e").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("relay dir");
        let config = dir.join("walrelay.yaml");
        std::fs::write(&config, yaml).expect("write config");
        Self::start_in(dir, config, Vec::new())
    }

    /// As [`Relay::start`], with extra environment variables for the relay process.
    pub fn start_with_env(name: &str, yaml: &str, env: &[(&str, &str)]) -> Relay {
        let dir = std::env::temp_dir().join("walrelay-e2e").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("relay dir");
        let config = dir.join("walrelay.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_in(dir, config, env)
    }

    /// Starts again (after `kill9` or `stop`) with the same directory, state_dir and config.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_relay(&self.config, &self.log, &self.env);
    }

    fn start_in(dir: PathBuf, config: PathBuf, env: Vec<(String, String)>) -> Relay {
        let log = dir.join("walrelay.log");
        let child = spawn_relay(&config, &log, &env);
        Relay {
            child,
            dir,
            config,
            log,
            env,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait walrelay")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the relay exits on its own; panics (with the log) after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "walrelay still runs after {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (blocking; call it from `block_in_place` in async tests) for the relay to stop
    /// with a failure, and returns its log; panics if it exits 0 or still runs after `timeout`.
    pub fn failure_log(&mut self, timeout: Duration) -> String {
        let status = self.wait_exit(timeout);
        let log = self.log_text();
        assert!(
            !status.success(),
            "walrelay exited 0; it should have failed:\n{log}"
        );
        log
    }

    /// Panics (with the log) if the relay exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("walrelay exited with {status}; log:\n{}", self.log_text());
        }
    }
}

fn spawn_relay(config: &Path, log: &Path, env: &[(String, String)]) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(relay_binary())
        .args(["run", "--config"])
        .arg(config)
        .current_dir(config.parent().expect("config dir"))
        .env("WALRELAY_LOG", "info,walrelay=debug")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .expect("spawn walrelay")
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    pub fn key_json(&self) -> serde_json::Value {
        serde_json::from_slice(self.key.as_deref().expect("record has a key")).expect("key is JSON")
    }
    pub fn value_json(&self) -> Option<serde_json::Value> {
        self.value
            .as_deref()
            .map(|v| serde_json::from_slice(v).expect("value is JSON"))
    }
    /// `payload` of the value; panics on a tombstone.
    pub fn payload(&self) -> serde_json::Value {
        self.value_json().expect("not a tombstone")["payload"].clone()
    }
}

fn record_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    use rdkafka::message::Headers;
    Record {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl Record {
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads a topic from the beginning, by partition assignment (no consumer group).
pub struct TopicReader {
    consumer: BaseConsumer,
    pub topic: String,
    pub records: Vec<Record>,
    assigned: bool,
}

impl TopicReader {
    pub fn new(brokers: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("e2e_reader"))
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        TopicReader {
            consumer,
            topic: topic.to_string(),
            records: Vec::new(),
            assigned: false,
        }
    }

    fn try_assign(&mut self) -> bool {
        if self.assigned {
            return true;
        }
        let Ok(md) = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
        else {
            return false;
        };
        let Some(t) = md.topics().iter().find(|t| t.name() == self.topic) else {
            return false;
        };
        if t.error().is_some() || t.partitions().is_empty() {
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            tpl.add_partition_offset(&self.topic, p.id(), Offset::Beginning)
                .expect("tpl");
        }
        self.consumer.assign(&tpl).expect("assign");
        self.assigned = true;
        true
    }

    /// The sum of the topic's high watermarks (records the broker holds); 0 before it exists.
    pub fn high_watermark_total(&self) -> i64 {
        let Ok(md) = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
        else {
            return 0;
        };
        let Some(t) = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic && t.error().is_none())
        else {
            return 0;
        };
        t.partitions()
            .iter()
            .filter_map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p.id(), Duration::from_secs(5))
                    .ok()
            })
            .map(|(_, high)| high)
            .sum()
    }

    /// The number of partitions (after the topic exists).
    pub fn partitions(&self) -> usize {
        let md = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            .expect("metadata");
        md.topics()[0].partitions().len()
    }

    /// Reads what arrives within `wait` and returns the records new since the last call.
    pub fn read_more(&mut self, wait: Duration) -> &[Record] {
        let before = self.records.len();
        if self.try_assign() {
            let start = Instant::now();
            while start.elapsed() < wait {
                match self.consumer.poll(Duration::from_millis(100)) {
                    Some(m) => {
                        let m = m.expect("consume");
                        self.records.push(record_of(&m));
                        if self.records.len() - before >= 5000 {
                            break;
                        }
                    }
                    None => break,
                }
            }
        } else {
            std::thread::sleep(wait.min(Duration::from_millis(200)));
        }
        &self.records[before..]
    }

    /// Polls until `done(records)` holds; panics after `timeout` with what was read.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Record]) -> bool,
    ) -> &[Record] {
        let start = Instant::now();
        loop {
            if self.try_assign() {
                while let Some(m) = self.consumer.poll(Duration::from_millis(200)) {
                    let m = m.expect("consume");
                    self.records.push(record_of(&m));
                    if self.records.len().is_multiple_of(1000) && done(&self.records) {
                        return &self.records;
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
            if done(&self.records) {
                return &self.records;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what} on {}; read {} records, last: {:?}",
                self.topic,
                self.records.len(),
                self.records
                    .last()
                    .map(|r| r.value.as_deref().map(String::from_utf8_lossy))
            );
        }
    }
}

/// A relay config for `db`, with `extra` YAML appended at the top level.
pub fn relay_yaml(
    db: &Db,
    slot: &str,
    tables: &[&str],
    prefix: &str,
    brokers: &str,
    kafka_extra: &str,
    extra: &str,
) -> String {
    format!(
        "source:\n  postgres:\n    url: {url}\n    slot: {slot}\n    publication: {slot}\n    tables: [{tables}]\n    snapshot: initial\n    status_interval_ms: 1000\n\
         topic_prefix: {prefix}\nstate_dir: ./state\nsink:\n  kafka:\n    brokers: {brokers}\n{kafka_extra}plugins: []\n{extra}",
        url = db.url,
        tables = tables.join(", "),
    )
}

/// How `tests/e2e/consume.py` decodes keys and values.
#[derive(Debug, Clone)]
pub enum WireFormat {
    Json,
    /// Confluent-framed Avro, writer schemas fetched from this registry URL.
    Avro {
        registry: String,
    },
}

/// The Python of the cross-client consumer's venv (kafka-python, fastavro), which
/// `scripts/bootstrap` installs; runs it once per test binary if the venv is missing.
pub fn consumer_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let cache = std::env::var_os("WALRELAY_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/walrelay")
            });
        let python = cache.join("pyenv/bin/python");
        let ready = |p: &Path| {
            Command::new(p)
                .args(["-c", "import kafka, fastavro, lz4"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ready(&python) {
            let status = Command::new(services().repo.join("scripts/bootstrap"))
                .status()
                .expect("run scripts/bootstrap");
            assert!(status.success(), "scripts/bootstrap failed");
        }
        assert!(
            ready(&python),
            "no kafka-python and fastavro in {}: run scripts/bootstrap",
            python.display()
        );
        python
    })
}

/// Reads `topics` from the beginning with `tests/e2e/consume.py`, a different Kafka client
/// (kafka-python) and decoder (json, or fastavro with the registry) than walrelay's, until
/// `expect` messages arrived. One JSON object per message: `topic`, `partition`, `offset`, `key`,
/// `value` (decoded; a Kafka null stays null) and `headers` (`[[name, base64]]`). Blocking: call
/// it from `tokio::task::block_in_place` in async tests. Panics with the script's stderr if it
/// fails or times out.
pub fn python_consume(
    brokers: &str,
    topics: &[&str],
    format: &WireFormat,
    expect: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    python_consume_with(brokers, topics, format, &[], expect, timeout)
}

/// [`python_consume`] with more arguments for consume.py (`--basic-auth user:password`,
/// `--bearer token`).
pub fn python_consume_with(
    brokers: &str,
    topics: &[&str],
    format: &WireFormat,
    args: &[&str],
    expect: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let script = services().repo.join("tests/e2e/consume.py");
    let mut cmd = Command::new(consumer_python());
    cmd.arg(&script).args(["--bootstrap", brokers]);
    for t in topics {
        cmd.args(["--topic", t]);
    }
    match format {
        WireFormat::Json => {
            cmd.args(["--format", "json"]);
        }
        WireFormat::Avro { registry } => {
            cmd.args(["--format", "avro", "--registry", registry]);
        }
    }
    cmd.args(args);
    cmd.args(["--expect", &expect.to_string()])
        .args(["--timeout", &timeout.as_secs_f64().to_string()]);
    let out = cmd.output().expect("run consume.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "consume.py failed ({}): {}\nread so far:\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("consume.py line {l:?}: {e}")))
        .collect()
}

/// Reads `topic` from the beginning until `done` holds (or panics after `timeout`).
pub fn read_topic(
    topic: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let mut reader = TopicReader::new(&services().brokers, topic);
    tokio::task::block_in_place(|| reader.read_until(timeout, what, done).to_vec())
}

/// The member schema `name` of the `after` struct of a change record's value schema (null when
/// absent).
pub fn after_field(v: &serde_json::Value, name: &str) -> serde_json::Value {
    after_members(v)
        .into_iter()
        .find(|f| f["field"] == name)
        .unwrap_or(serde_json::Value::Null)
}

/// The member names of the `after` struct of a change record's value schema, in order.
pub fn after_fields(v: &serde_json::Value) -> Vec<String> {
    after_members(v)
        .iter()
        .map(|f| f["field"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn after_members(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["schema"]["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["field"] == "after"))
        .and_then(|a| a["fields"].as_array())
        .cloned()
        .unwrap_or_default()
}
