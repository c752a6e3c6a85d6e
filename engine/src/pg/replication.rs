//! A PostgreSQL replication connection (`replication=database`), written on `postgres-protocol`.
//!
//! Why our own transport: the relay needs the replication connection for three things that
//! off-the-shelf clients do not all offer together — `CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT`
//! with the connection held open while another session imports the snapshot, the choice of
//! pgoutput protocol version and options, and CopyBoth streaming with standby status updates
//! under our own control. The wire protocol part is small; message framing, MD5 and SCRAM come
//! from `postgres-protocol`, the same crate `tokio-postgres` uses for the SQL side.
//!
//! # Positions
//! `XLogData.wal_start` is the LSN of the WAL record a pgoutput message was decoded from. What the
//! relay reports in a standby status update as *flushed* becomes the slot's
//! `confirmed_flush_lsn`: PostgreSQL may then recycle WAL before it and will not send again any
//! transaction that committed before it. The relay reports only positions whose events the broker
//! has acknowledged.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::{backend, frontend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::Host;

use crate::event::Lsn;
use crate::pg::capture::PgTls;
use crate::pg::tls::SslMode;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Session settings that make PostgreSQL's text output of values unambiguous for our parsers.
pub const SESSION_OPTIONS: &str =
    "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c lc_monetary=C";

/// Errors of the replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("cannot connect to PostgreSQL at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("replication connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("PostgreSQL closed the replication connection")]
    Closed,
    #[error("PostgreSQL refused `{command}`: {message}")]
    Server {
        command: String,
        /// SQLSTATE code, e.g. `42704` (undefined object), `55006` (object in use).
        code: String,
        message: String,
    },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("unexpected message from PostgreSQL: {0}")]
    Protocol(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("TLS to {host} failed (sslmode={mode}): {message}. Check sslrootcert (the CA that signed the server's certificate) and, for verify-full, that the URL's host is a name or address in the certificate")]
    Tls {
        host: String,
        mode: SslMode,
        message: String,
    },
}

impl ReplicationError {
    /// Whether reconnecting later may succeed (network trouble, server restart).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Io(_) | Self::Closed => true,
            // 57P01 admin shutdown, 57P02/57P03 crash/cannot connect now, 53300 too many connections.
            Self::Server { code, .. } => code.starts_with("57P") || code == "53300",
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, ReplicationError>;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 1 << 16;

/// A replication connection in command mode.
pub struct ReplicationConnection {
    io: Box<dyn Io>,
    read: BytesMut,
    write: BytesMut,
    /// Where the socket is read into, zeroed once: reading straight into `read`'s spare
    /// capacity would have a TLS stream zero that whole capacity on every read (tokio-native-tls
    /// initializes the buffer it is given), a memset that cost a tenth of the relay's CPU.
    scratch: Box<[u8]>,
}

/// The rows of a simple query: column names, then rows of text values.
#[derive(Debug, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryResult {
    /// The value of `column` in the first row.
    pub fn first(&self, column: &str) -> Option<&str> {
        let idx = self.columns.iter().position(|c| c == column)?;
        self.rows.first()?.get(idx)?.as_deref()
    }
}

/// What `CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT` returns.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    /// The position from which the slot decodes: every transaction committing after it is streamed.
    pub consistent_point: Lsn,
    /// The exported snapshot, valid only while this connection stays idle in command mode.
    pub snapshot_name: String,
}

/// Asks the server for TLS (SSLRequest) and, when it agrees, runs the handshake; a server that
/// declines is used in plain text only under `prefer`.
async fn negotiate_tls(
    mut stream: TcpStream,
    host: &str,
    mode: SslMode,
    connector: &native_tls::TlsConnector,
) -> Result<Box<dyn Io>> {
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    stream.write_all(&request).await?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await?;
    let fail = |message: String| ReplicationError::Tls {
        host: host.to_string(),
        mode,
        message,
    };
    match answer[0] {
        b'S' => {
            let tls = tokio_native_tls::TlsConnector::from(connector.clone());
            let stream = tls
                .connect(host, stream)
                .await
                .map_err(|e| fail(e.to_string()))?;
            Ok(Box::new(stream))
        }
        b'N' if mode == SslMode::Prefer => Ok(Box::new(stream)),
        b'N' => Err(fail("the server does not accept TLS connections".into())),
        other => Err(ReplicationError::Protocol(format!(
            "answer {other:#04x} to the TLS request"
        ))),
    }
}

impl ReplicationConnection {
    /// Connects with `replication=database` using the host, port, user, password and database
    /// of `config` (a `tokio_postgres::Config`, so one URL serves both connections), over TLS as
    /// `tls` says (TCP only: a Unix socket is local and never encrypted, as with libpq).
    pub async fn connect(config: &tokio_postgres::Config, tls: &PgTls) -> Result<Self> {
        let host = config
            .get_hosts()
            .first()
            .cloned()
            .unwrap_or(Host::Tcp("localhost".into()));
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let io: Box<dyn Io> = match &host {
            Host::Tcp(h) => {
                let addr = format!("{h}:{port}");
                let stream = TcpStream::connect(&addr).await.map_err(|source| {
                    ReplicationError::Connect {
                        addr: addr.clone(),
                        source,
                    }
                })?;
                stream.set_nodelay(true)?;
                match &tls.connector {
                    Some(connector) => negotiate_tls(stream, h, tls.mode, connector).await?,
                    None => Box::new(stream),
                }
            }
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                let stream = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|source| ReplicationError::Connect {
                        addr: path.display().to_string(),
                        source,
                    })?;
                Box::new(stream)
            }
        };
        let mut conn = ReplicationConnection {
            io,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: BytesMut::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        };
        let user = config.get_user().unwrap_or("postgres").to_string();
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let app = config
            .get_application_name()
            .unwrap_or("walrelay")
            .to_string();
        let params = [
            ("user", user.as_str()),
            ("database", dbname.as_str()),
            ("replication", "database"),
            ("application_name", app.as_str()),
            ("options", SESSION_OPTIONS),
        ];
        frontend::startup_message(params.iter().copied(), &mut conn.write)?;
        conn.flush().await?;
        conn.authenticate(user.as_bytes(), config.get_password())
            .await?;
        Ok(conn)
    }

    async fn authenticate(&mut self, user: &[u8], password: Option<&[u8]>) -> Result<()> {
        let need_password = || {
            password.ok_or_else(|| {
                ReplicationError::Auth(
                    "the server asks for a password and the URL has none".to_string(),
                )
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.next_message().await? {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    frontend::password_message(need_password()?, &mut self.write)?;
                    self.flush().await?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        user,
                        need_password()?,
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.write)?;
                    self.flush().await?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut has_scram = false;
                    while let Some(m) = mechanisms.next()? {
                        has_scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !has_scram {
                        return Err(ReplicationError::Auth(
                            "the server offers no SASL mechanism walrelay supports (SCRAM-SHA-256)"
                                .into(),
                        ));
                    }
                    let s = ScramSha256::new(need_password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        s.message(),
                        &mut self.write,
                    )?;
                    self.flush().await?;
                    scram = Some(s);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        ReplicationError::Protocol("SASL continue without SASL start".into())
                    })?;
                    s.update(body.data())
                        .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                    frontend::sasl_response(s.message(), &mut self.write)?;
                    self.flush().await?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        ReplicationError::Protocol("SASL final without SASL start".into())
                    })?;
                    s.finish(body.data())
                        .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                }
                backend::Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    return Err(ReplicationError::Server {
                        command: "connect (replication=database)".into(),
                        code,
                        message,
                    });
                }
                backend::Message::ParameterStatus(_)
                | backend::Message::BackendKeyData(_)
                | backend::Message::NoticeResponse(_) => {}
                backend::Message::ReadyForQuery(_) => return Ok(()),
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "during authentication: {}",
                        message_name(&other)
                    )))
                }
            }
        }
    }

    /// Runs one replication command or SQL statement with the simple query protocol.
    pub async fn simple_query(&mut self, command: &str) -> Result<QueryResult> {
        frontend::query(command, &mut self.write)?;
        self.flush().await?;
        let mut result = QueryResult::default();
        let mut error = None;
        loop {
            match self.next_message().await? {
                backend::Message::RowDescription(body) => {
                    let mut fields = body.fields();
                    while let Some(f) = fields.next()? {
                        result.columns.push(f.name().to_string());
                    }
                }
                backend::Message::DataRow(body) => {
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(range) = ranges.next()? {
                        row.push(
                            range.map(|r| String::from_utf8_lossy(&body.buffer()[r]).into_owned()),
                        );
                    }
                    result.rows.push(row);
                }
                backend::Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    error = Some(ReplicationError::Server {
                        command: command.to_string(),
                        code,
                        message,
                    });
                }
                backend::Message::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(result),
                    }
                }
                _ => {}
            }
        }
    }

    /// `CREATE_REPLICATION_SLOT <slot> [TEMPORARY] LOGICAL pgoutput EXPORT_SNAPSHOT`. A
    /// temporary slot is dropped by the server when this connection ends. The slot name must
    /// have been validated as `[a-z0-9_]+` (configuration does).
    pub async fn create_slot_exporting_snapshot(
        &mut self,
        slot: &str,
        temporary: bool,
    ) -> Result<CreatedSlot> {
        let temporary = if temporary { " TEMPORARY" } else { "" };
        let r = self
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT \"{slot}\"{temporary} LOGICAL pgoutput EXPORT_SNAPSHOT"
            ))
            .await?;
        let consistent_point = r
            .first("consistent_point")
            .and_then(Lsn::parse)
            .ok_or_else(|| {
                ReplicationError::Protocol(
                    "CREATE_REPLICATION_SLOT returned no consistent_point".into(),
                )
            })?;
        let snapshot_name = r
            .first("snapshot_name")
            .ok_or_else(|| {
                ReplicationError::Protocol(
                    "CREATE_REPLICATION_SLOT returned no snapshot_name".into(),
                )
            })?
            .to_string();
        Ok(CreatedSlot {
            consistent_point,
            snapshot_name,
        })
    }

    /// `START_REPLICATION SLOT … LOGICAL start (options)`: the connection switches to CopyBoth.
    /// `options` are pgoutput's (`proto_version`, `publication_names`, …), values unquoted.
    pub async fn start_logical(
        mut self,
        slot: &str,
        start: Lsn,
        options: &[(&str, String)],
    ) -> Result<ReplicationStream> {
        let opts = options
            .iter()
            .map(|(k, v)| format!("\"{k}\" '{}'", v.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let command = format!("START_REPLICATION SLOT \"{slot}\" LOGICAL {start} ({opts})");
        frontend::query(&command, &mut self.write)?;
        self.flush().await?;
        loop {
            if self.next_is_copy_both().await? {
                break;
            }
            match self.next_message().await? {
                backend::Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    // The server follows the error with ReadyForQuery; we are done with it anyway.
                    return Err(ReplicationError::Server {
                        command,
                        code,
                        message,
                    });
                }
                backend::Message::NoticeResponse(_) | backend::Message::ParameterStatus(_) => {}
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "expected CopyBothResponse to START_REPLICATION, got {}",
                        message_name(&other)
                    )))
                }
            }
        }
        Ok(ReplicationStream { conn: self })
    }

    async fn flush(&mut self) -> Result<()> {
        self.io.write_all(&self.write).await?;
        self.io.flush().await?;
        self.write.clear();
        Ok(())
    }

    /// Consumes a CopyBothResponse (`W`) if it is the next message; `postgres-protocol`'s parser
    /// does not know this message, so it is framed here.
    async fn next_is_copy_both(&mut self) -> Result<bool> {
        while self.read.len() < 5 {
            self.fill().await?;
        }
        if self.read[0] != b'W' {
            return Ok(false);
        }
        let len =
            u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]) as usize;
        while self.read.len() < 1 + len {
            self.fill().await?;
        }
        self.read.advance(1 + len);
        Ok(true)
    }

    /// Reads the next backend message. Cancel-safe: bytes read stay in the buffer.
    async fn next_message(&mut self) -> Result<backend::Message> {
        loop {
            if let Some(msg) = backend::Message::parse(&mut self.read)? {
                return Ok(msg);
            }
            self.fill().await?;
        }
    }

    /// Appends what the socket has to `read`. Cancel-safe: a read either completes (and its
    /// bytes are appended before the next await) or reads nothing.
    async fn fill(&mut self) -> Result<()> {
        let n = self.io.read(&mut self.scratch).await?;
        if n == 0 {
            return Err(ReplicationError::Closed);
        }
        self.read.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }
}

/// A replication connection in streaming (CopyBoth) mode.
pub struct ReplicationStream {
    conn: ReplicationConnection,
}

/// One message of the replication stream.
#[derive(Debug)]
pub enum StreamMessage {
    /// A pgoutput message. `wal_start` is the LSN of the WAL record it was decoded from.
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        data: Bytes,
    },
    /// The server's position; `reply_requested` asks for a status update now (before
    /// `wal_sender_timeout` expires).
    Keepalive { wal_end: Lsn, reply_requested: bool },
}

impl ReplicationStream {
    /// The next message. Cancel-safe, so it can sit in a `select!` next to timers.
    pub async fn next(&mut self) -> Result<StreamMessage> {
        loop {
            match self.conn.next_message().await? {
                backend::Message::CopyData(body) => {
                    let mut data = body.into_bytes();
                    return parse_copy_data(&mut data);
                }
                backend::Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    return Err(ReplicationError::Server {
                        command: "START_REPLICATION (streaming)".into(),
                        code,
                        message,
                    });
                }
                backend::Message::CopyDone => return Err(ReplicationError::Closed),
                backend::Message::NoticeResponse(_) | backend::Message::ParameterStatus(_) => {}
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected {} in the replication stream",
                        message_name(&other)
                    )))
                }
            }
        }
    }

    /// Sends a standby status update: everything before `flushed` is safely delivered, so the
    /// slot's `confirmed_flush_lsn` may advance to it.
    pub async fn send_status(&mut self, flushed: Lsn, reply_requested: bool) -> Result<()> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(flushed.0); // written
        payload.put_u64(flushed.0); // flushed
        payload.put_u64(flushed.0); // applied
        payload.put_i64(now_pg_micros());
        payload.put_u8(u8::from(reply_requested));
        frontend::CopyData::new(payload.freeze())?.write(&mut self.conn.write);
        self.conn.flush().await
    }

    /// Ends streaming politely (CopyDone, Terminate). Errors are irrelevant at that point.
    pub async fn close(mut self) {
        frontend::copy_done(&mut self.conn.write);
        frontend::terminate(&mut self.conn.write);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.flush()).await;
    }
}

fn parse_copy_data(data: &mut Bytes) -> Result<StreamMessage> {
    let short = || ReplicationError::Protocol("truncated CopyData message".into());
    if data.is_empty() {
        return Err(short());
    }
    match data.get_u8() {
        b'w' => {
            if data.remaining() < 24 {
                return Err(short());
            }
            let wal_start = Lsn(data.get_u64());
            let wal_end = Lsn(data.get_u64());
            let _server_time = data.get_i64();
            Ok(StreamMessage::XLogData {
                wal_start,
                wal_end,
                data: data.split_off(0),
            })
        }
        b'k' => {
            if data.remaining() < 17 {
                return Err(short());
            }
            let wal_end = Lsn(data.get_u64());
            let _server_time = data.get_i64();
            let reply_requested = data.get_u8() == 1;
            Ok(StreamMessage::Keepalive {
                wal_end,
                reply_requested,
            })
        }
        tag => Err(ReplicationError::Protocol(format!(
            "unknown replication CopyData tag {:?}",
            tag as char
        ))),
    }
}

fn now_pg_micros() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    unix - PG_EPOCH_OFFSET_US
}

/// SQLSTATE and a message with detail and hint when present.
fn error_fields(body: &backend::ErrorResponseBody) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = String::new();
    let mut hint = String::new();
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = v,
            b'M' => message = v,
            b'D' => detail = v,
            b'H' => hint = v,
            _ => {}
        }
    }
    if !detail.is_empty() {
        message = format!("{message} ({detail})");
    }
    if !hint.is_empty() {
        message = format!("{message}; hint: {hint}");
    }
    (code, message)
}

fn message_name(m: &backend::Message) -> &'static str {
    match m {
        backend::Message::CopyData(_) => "CopyData",
        backend::Message::CopyDone => "CopyDone",
        backend::Message::DataRow(_) => "DataRow",
        backend::Message::RowDescription(_) => "RowDescription",
        backend::Message::CommandComplete(_) => "CommandComplete",
        backend::Message::ReadyForQuery(_) => "ReadyForQuery",
        backend::Message::ErrorResponse(_) => "ErrorResponse",
        backend::Message::CopyOutResponse(_) => "CopyOutResponse",
        backend::Message::CopyInResponse(_) => "CopyInResponse",
        _ => "another message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xlogdata_and_keepalive() {
        let mut w = BytesMut::new();
        w.put_u8(b'w');
        w.put_u64(0x1_0000_0010);
        w.put_u64(0x1_0000_0020);
        w.put_i64(0);
        w.put_slice(b"B...");
        match parse_copy_data(&mut w.freeze()).unwrap() {
            StreamMessage::XLogData {
                wal_start,
                wal_end,
                data,
            } => {
                assert_eq!(wal_start.to_string(), "1/10");
                assert_eq!(wal_end.to_string(), "1/20");
                assert_eq!(&data[..], b"B...");
            }
            other => panic!("{other:?}"),
        }
        let mut k = BytesMut::new();
        k.put_u8(b'k');
        k.put_u64(42);
        k.put_i64(0);
        k.put_u8(1);
        match parse_copy_data(&mut k.freeze()).unwrap() {
            StreamMessage::Keepalive {
                wal_end,
                reply_requested,
            } => {
                assert_eq!(wal_end, Lsn(42));
                assert!(reply_requested);
            }
            other => panic!("{other:?}"),
        }
        let err = parse_copy_data(&mut Bytes::from_static(b"w\0\0")).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
