//! Decoder for PostgreSQL's `pgoutput` logical replication messages, protocol versions 1 and 2.
//!
//! The input is the payload of one `XLogData` (`w`) message of the streaming replication
//! protocol; [`decode`] turns it into an owned [`Message`]. This module does no I/O and keeps no
//! state: the caller tracks whether it is inside a streamed transaction (between
//! [`Message::StreamStart`] and [`Message::StreamStop`], protocol version 2) and says so with the
//! `in_stream` argument, because in that state the data messages carry a leading xid.
//!
//! # CDC semantics
//!
//! * A transaction arrives as `Begin`, its changes, `Commit`. Only the commit's LSN may be
//!   confirmed to the server, and only once every change before it has been delivered.
//! * A `Relation` message precedes the first change of a table in a session, and is sent again
//!   whenever the table's definition changed; changes refer to tables by relation oid only.
//! * The old row of an update or delete ([`OldTuple`]) depends on the table's replica identity;
//!   see [`OldKind`].
//! * Under `DEFAULT` identity an update that did not touch a TOASTed column does not ship its
//!   value: the column is [`TupleField::UnchangedToast`] in the new tuple.
//! * With streaming (protocol v2) a large in-progress transaction arrives in blocks
//!   `StreamStart` … `StreamStop`, possibly interleaved with other transactions, and ends with
//!   `StreamCommit` or `StreamAbort` (the latter may abort only a subtransaction).
//!
//! Malformed input never panics: every read is bounds-checked and reported as a [`DecodeError`]
//! naming the message, the field and the byte offset.
use std::fmt;

use thiserror::Error;

use crate::model::Lsn;

/// Microseconds from 1970-01-01 (Unix epoch) to 2000-01-01 (PostgreSQL epoch).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// One decoded pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `B`: a transaction starts. `final_lsn` is the LSN of its commit record.
    Begin {
        final_lsn: Lsn,
        /// Commit time, µs since the Unix epoch.
        commit_ts_us: i64,
        xid: u32,
    },
    /// `C`: the transaction ends. `end_lsn` is the position to confirm once it is delivered.
    Commit {
        /// Currently unused by PostgreSQL (always 0).
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        /// Commit time, µs since the Unix epoch.
        commit_ts_us: i64,
    },
    /// `O`: the transaction was replicated into this server from the named origin.
    Origin { commit_lsn: Lsn, name: String },
    /// `R`: a table's definition, sent before its first change and after each change of it.
    Relation(Relation),
    /// `Y`: a data type's name (sent for non-built-in types before a relation using them).
    Type {
        /// Present only inside a stream block.
        xid: Option<u32>,
        oid: u32,
        /// `pg_catalog` when the message carried an empty namespace.
        namespace: String,
        name: String,
    },
    /// `I`: a row was inserted.
    Insert {
        /// Present only inside a stream block.
        xid: Option<u32>,
        relation: u32,
        new: Tuple,
    },
    /// `U`: a row was updated. `old` is present per the replica identity (see [`OldKind`]).
    Update {
        /// Present only inside a stream block.
        xid: Option<u32>,
        relation: u32,
        old: Option<OldTuple>,
        new: Tuple,
    },
    /// `D`: a row was deleted. `old` identifies it per the replica identity (see [`OldKind`]).
    Delete {
        /// Present only inside a stream block.
        xid: Option<u32>,
        relation: u32,
        old: OldTuple,
    },
    /// `T`: tables were truncated together.
    Truncate {
        /// Present only inside a stream block.
        xid: Option<u32>,
        /// Bit 1: `CASCADE`; bit 2: `RESTART IDENTITY` (see [`TRUNCATE_CASCADE`],
        /// [`TRUNCATE_RESTART_IDENTITY`]).
        options: u8,
        relations: Vec<u32>,
    },
    /// `M`: a logical decoding message (`pg_logical_emit_message`), when `messages` is enabled.
    Message {
        /// Present only inside a stream block.
        xid: Option<u32>,
        /// Emitted as part of its transaction (`true`) or immediately (`false`).
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
    },
    /// `S`: a block of a streamed, still in-progress transaction starts (protocol v2).
    StreamStart {
        xid: u32,
        /// The first block of this transaction.
        first_segment: bool,
    },
    /// `E`: the current stream block ends.
    StreamStop,
    /// `c`: a streamed transaction committed.
    StreamCommit {
        xid: u32,
        /// Currently unused by PostgreSQL (always 0).
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        /// Commit time, µs since the Unix epoch.
        commit_ts_us: i64,
    },
    /// `A`: a streamed transaction (`subxid == xid`) or one of its subtransactions aborted.
    StreamAbort { xid: u32, subxid: u32 },
}

/// [`Message::Truncate`] option bit: `TRUNCATE ... CASCADE`.
pub const TRUNCATE_CASCADE: u8 = 1;
/// [`Message::Truncate`] option bit: `TRUNCATE ... RESTART IDENTITY`.
pub const TRUNCATE_RESTART_IDENTITY: u8 = 2;

/// A table definition as the Relation message carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// Present only inside a stream block.
    pub xid: Option<u32>,
    /// `pg_class.oid`: how later changes refer to the table.
    pub oid: u32,
    /// `pg_catalog` when the message carried an empty namespace.
    pub namespace: String,
    pub name: String,
    /// `relreplident`: `d`, `f`, `i` or `n` (the engine maps it to its replica identity).
    pub replica_identity: u8,
    /// The published columns, in the order tuples list them.
    pub columns: Vec<RelationColumn>,
}

/// One column of a [`Relation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the primary key, or the identity index's columns).
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod`; `-1` when the type has none.
    pub type_modifier: i32,
}

/// The columns of one row, positional against the [`Relation`] last sent for the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tuple(pub Vec<TupleField>);

/// One column value of a [`Tuple`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TupleField {
    /// `n`: SQL NULL. In a key-only old tuple ([`OldKind::Key`]) the non-key columns are null.
    Null,
    /// `u`: the value is TOASTed and this update did not change it, so PostgreSQL did not send
    /// it. The consumer does not know the value; it is not a NULL.
    UnchangedToast,
    /// `t`: the type's text output, in the server encoding (not NUL-terminated).
    Text(Vec<u8>),
    /// `b`: the type's binary send format (only when the `binary` option is on).
    Binary(Vec<u8>),
}

impl TupleField {
    /// The text value as a `str`, if this is a [`TupleField::Text`] holding valid UTF-8.
    pub fn as_text(&self) -> Option<Result<&str, std::str::Utf8Error>> {
        match self {
            TupleField::Text(bytes) => Some(std::str::from_utf8(bytes)),
            _ => None,
        }
    }
}

/// What the old row of an update or delete contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: only the replica identity columns (primary key or identity index) carry values, the
    /// other columns are [`TupleField::Null`]. Sent with identity `DEFAULT`/`INDEX` on a delete,
    /// and on an update only when the key itself changed (otherwise the update has no old tuple).
    Key,
    /// `O`: the whole old row. Sent with identity `FULL` on every update and delete.
    Full,
}

/// The old row of an update or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldTuple {
    pub kind: OldKind,
    pub tuple: Tuple,
}

/// A column position for error messages: `None` when the field is not inside a tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnCtx(pub Option<usize>);

impl fmt::Display for ColumnCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(i) => write!(f, " of column {i}"),
            None => Ok(()),
        }
    }
}

/// Why a pgoutput message could not be decoded. Offsets count bytes from the message's tag.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty pgoutput message")]
    Empty,
    #[error("unknown pgoutput message tag {tag:#04x} ({})", (*.tag as char).escape_default())]
    UnknownTag { tag: u8 },
    #[error(
        "truncated {message} message: needed {needed} bytes for the {field}{column} at offset \
         {offset}, {left} left"
    )]
    Truncated {
        message: &'static str,
        field: &'static str,
        column: ColumnCtx,
        offset: usize,
        needed: usize,
        left: usize,
    },
    #[error(
        "truncated {message} message: the {field} at offset {offset} has no NUL terminator \
         ({left} bytes left)"
    )]
    Unterminated {
        message: &'static str,
        field: &'static str,
        offset: usize,
        left: usize,
    },
    #[error("invalid {message} message: the {field}{column} at offset {offset} {reason}")]
    Invalid {
        message: &'static str,
        field: &'static str,
        column: ColumnCtx,
        offset: usize,
        reason: String,
    },
    #[error("{message} message has {left} unexpected trailing bytes at offset {offset}")]
    TrailingBytes {
        message: &'static str,
        offset: usize,
        left: usize,
    },
}

/// Decodes one pgoutput message.
///
/// `in_stream` must be true between a [`Message::StreamStart`] and the next
/// [`Message::StreamStop`]: there, Relation, Type, Insert, Update, Delete, Truncate and Message
/// carry the xid of the streamed (sub)transaction before their other fields.
pub fn decode(buf: &[u8], in_stream: bool) -> Result<Message, DecodeError> {
    let (&tag, _) = buf.split_first().ok_or(DecodeError::Empty)?;
    let name = match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        b'S' => "Stream Start",
        b'E' => "Stream Stop",
        b'c' => "Stream Commit",
        b'A' => "Stream Abort",
        _ => return Err(DecodeError::UnknownTag { tag }),
    };
    let mut r = Reader {
        buf,
        pos: 1,
        message: name,
    };
    let stream_xid = |r: &mut Reader<'_>| -> Result<Option<u32>, DecodeError> {
        if in_stream {
            r.u32("xid").map(Some)
        } else {
            Ok(None)
        }
    };
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.lsn("final LSN")?,
            commit_ts_us: r.timestamp("commit timestamp")?,
            xid: r.u32("xid")?,
        },
        b'C' => Message::Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_ts_us: r.timestamp("commit timestamp")?,
        },
        b'O' => Message::Origin {
            commit_lsn: r.lsn("commit LSN")?,
            name: r.string("origin name")?,
        },
        b'R' => {
            let xid = stream_xid(&mut r)?;
            Message::Relation(decode_relation(&mut r, xid)?)
        }
        b'Y' => {
            let xid = stream_xid(&mut r)?;
            let oid = r.u32("type oid")?;
            let namespace = namespace_or_catalog(r.string("namespace")?);
            let name = r.string("type name")?;
            Message::Type {
                xid,
                oid,
                namespace,
                name,
            }
        }
        b'I' => {
            let xid = stream_xid(&mut r)?;
            let relation = r.u32("relation oid")?;
            let kind_at = r.pos;
            match r.u8("new tuple marker")? {
                b'N' => {}
                other => return Err(r.bad_marker("new tuple marker", kind_at, other, "'N'")),
            }
            let new = decode_tuple(&mut r, TupleRole::New)?;
            Message::Insert { xid, relation, new }
        }
        b'U' => {
            let xid = stream_xid(&mut r)?;
            let relation = r.u32("relation oid")?;
            let kind_at = r.pos;
            let old = match r.u8("tuple marker")? {
                b'N' => None,
                marker @ (b'K' | b'O') => {
                    let kind = if marker == b'K' {
                        OldKind::Key
                    } else {
                        OldKind::Full
                    };
                    let tuple = decode_tuple(&mut r, TupleRole::Old)?;
                    let new_at = r.pos;
                    match r.u8("new tuple marker")? {
                        b'N' => {}
                        other => {
                            return Err(r.bad_marker("new tuple marker", new_at, other, "'N'"))
                        }
                    }
                    Some(OldTuple { kind, tuple })
                }
                other => {
                    return Err(r.bad_marker("tuple marker", kind_at, other, "'K', 'O' or 'N'"))
                }
            };
            let new = decode_tuple(&mut r, TupleRole::New)?;
            Message::Update {
                xid,
                relation,
                old,
                new,
            }
        }
        b'D' => {
            let xid = stream_xid(&mut r)?;
            let relation = r.u32("relation oid")?;
            let kind_at = r.pos;
            let kind = match r.u8("old tuple marker")? {
                b'K' => OldKind::Key,
                b'O' => OldKind::Full,
                other => {
                    return Err(r.bad_marker("old tuple marker", kind_at, other, "'K' or 'O'"))
                }
            };
            let tuple = decode_tuple(&mut r, TupleRole::Old)?;
            Message::Delete {
                xid,
                relation,
                old: OldTuple { kind, tuple },
            }
        }
        b'T' => {
            let xid = stream_xid(&mut r)?;
            let count_at = r.pos;
            let count = r.i32("relation count")?;
            let count = usize::try_from(count)
                .map_err(|_| r.invalid("relation count", None, count_at, "is negative"))?;
            let options = r.u8("options")?;
            // Never trust a count for an allocation: at most what the remaining bytes can hold.
            let mut relations = Vec::with_capacity(count.min(r.left() / 4));
            for _ in 0..count {
                relations.push(r.u32("relation oid")?);
            }
            Message::Truncate {
                xid,
                options,
                relations,
            }
        }
        b'M' => {
            let xid = stream_xid(&mut r)?;
            let flags = r.u8("flags")?;
            let lsn = r.lsn("message LSN")?;
            let prefix = r.string("prefix")?;
            let len_at = r.pos;
            let len = r.i32("content length")?;
            let len = usize::try_from(len)
                .map_err(|_| r.invalid("content length", None, len_at, "is negative"))?;
            let content = r.bytes("content", None, len)?.to_vec();
            Message::Message {
                xid,
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content,
            }
        }
        b'S' => Message::StreamStart {
            xid: r.u32("xid")?,
            first_segment: r.u8("first-segment flag")? == 1,
        },
        b'E' => Message::StreamStop,
        b'c' => Message::StreamCommit {
            xid: r.u32("xid")?,
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_ts_us: r.timestamp("commit timestamp")?,
        },
        b'A' => Message::StreamAbort {
            xid: r.u32("xid")?,
            subxid: r.u32("subtransaction xid")?,
        },
        // Every tag accepted above has an arm; this one is unreachable but must not panic.
        _ => return Err(DecodeError::UnknownTag { tag }),
    };
    if r.left() != 0 {
        return Err(DecodeError::TrailingBytes {
            message: name,
            offset: r.pos,
            left: r.left(),
        });
    }
    Ok(msg)
}

fn namespace_or_catalog(namespace: String) -> String {
    if namespace.is_empty() {
        "pg_catalog".to_owned()
    } else {
        namespace
    }
}

fn decode_relation(r: &mut Reader<'_>, xid: Option<u32>) -> Result<Relation, DecodeError> {
    let oid = r.u32("relation oid")?;
    let namespace = namespace_or_catalog(r.string("namespace")?);
    let name = r.string("relation name")?;
    let replica_identity = r.u8("replica identity")?;
    let count = usize::from(r.u16("column count")?);
    // Each column takes at least 10 bytes (flags, empty name, type oid, modifier).
    let mut columns = Vec::with_capacity(count.min(r.left() / 10));
    for _ in 0..count {
        let flags = r.u8("column flags")?;
        let name = r.string("column name")?;
        let type_oid = r.u32("column type oid")?;
        let type_modifier = r.i32("column type modifier")?;
        columns.push(RelationColumn {
            is_key: flags & 1 != 0,
            name,
            type_oid,
            type_modifier,
        });
    }
    Ok(Relation {
        xid,
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

/// Which tuple of a change is being read, for error messages.
#[derive(Clone, Copy)]
enum TupleRole {
    Old,
    New,
}

impl TupleRole {
    /// Field names: column count, column kind, value length, value.
    fn fields(self) -> [&'static str; 4] {
        match self {
            TupleRole::Old => [
                "old tuple column count",
                "old tuple column kind",
                "old tuple value length",
                "old tuple value",
            ],
            TupleRole::New => [
                "new tuple column count",
                "new tuple column kind",
                "new tuple value length",
                "new tuple value",
            ],
        }
    }
}

/// Reads a TupleData: a column count, then per column a kind byte and maybe a length and value.
fn decode_tuple(r: &mut Reader<'_>, role: TupleRole) -> Result<Tuple, DecodeError> {
    let [count_field, kind_field, len_field, value_field] = role.fields();
    let count = usize::from(r.u16(count_field)?);
    // Each column takes at least one byte.
    let mut fields = Vec::with_capacity(count.min(r.left()));
    for column in 0..count {
        let kind_at = r.pos;
        let kind = r.u8_in(kind_field, Some(column))?;
        let field = match kind {
            b'n' => TupleField::Null,
            b'u' => TupleField::UnchangedToast,
            b't' | b'b' => {
                let len_at = r.pos;
                let len = r.i32_in(len_field, Some(column))?;
                let len = usize::try_from(len)
                    .map_err(|_| r.invalid(len_field, Some(column), len_at, "is negative"))?;
                let value = r.bytes(value_field, Some(column), len)?.to_vec();
                if kind == b't' {
                    TupleField::Text(value)
                } else {
                    TupleField::Binary(value)
                }
            }
            other => {
                return Err(r.invalid(
                    kind_field,
                    Some(column),
                    kind_at,
                    format!(
                        "is {other:#04x} ('{}'), expected 'n', 'u', 't' or 'b'",
                        (other as char).escape_default()
                    ),
                ))
            }
        };
        fields.push(field);
    }
    Ok(Tuple(fields))
}

/// A bounds-checked cursor over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn bytes(
        &mut self,
        field: &'static str,
        column: Option<usize>,
        n: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(DecodeError::Truncated {
                message: self.message,
                field,
                column: ColumnCtx(column),
                offset: self.pos,
                needed: n,
                left: self.left(),
            })?;
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(
        &mut self,
        field: &'static str,
        column: Option<usize>,
    ) -> Result<[u8; N], DecodeError> {
        let bytes = self.bytes(field, column, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.u8_in(field, None)
    }

    fn u8_in(&mut self, field: &'static str, column: Option<usize>) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field, column)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field, None)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field, None)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.i32_in(field, None)
    }

    fn i32_in(&mut self, field: &'static str, column: Option<usize>) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field, column)?))
    }

    fn lsn(&mut self, field: &'static str) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array(field, None)?)))
    }

    /// A timestamp in µs since 2000-01-01, returned in µs since 1970-01-01 (saturating).
    fn timestamp(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let pg = i64::from_be_bytes(self.array(field, None)?);
        Ok(pg.saturating_add(PG_EPOCH_OFFSET_US))
    }

    /// A NUL-terminated UTF-8 string.
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Unterminated {
                message: self.message,
                field,
                offset: start,
                left: rest.len(),
            })?;
        let bytes = rest.get(..len).unwrap_or_default();
        let s = std::str::from_utf8(bytes).map_err(|e| {
            self.invalid(
                field,
                None,
                start,
                format!("is not valid UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        self.pos = start + len + 1;
        Ok(s.to_owned())
    }

    fn invalid(
        &self,
        field: &'static str,
        column: Option<usize>,
        offset: usize,
        reason: impl Into<String>,
    ) -> DecodeError {
        DecodeError::Invalid {
            message: self.message,
            field,
            column: ColumnCtx(column),
            offset,
            reason: reason.into(),
        }
    }

    fn bad_marker(
        &self,
        field: &'static str,
        offset: usize,
        got: u8,
        expected: &str,
    ) -> DecodeError {
        self.invalid(
            field,
            None,
            offset,
            format!(
                "is {got:#04x} ('{}'), expected {expected}",
                (got as char).escape_default()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds messages the way PostgreSQL's `proto.c` writes them.
    #[derive(Default)]
    struct W(Vec<u8>);

    impl W {
        fn tag(t: u8) -> Self {
            W(vec![t])
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn str(mut self, s: &str) -> Self {
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn text(self, v: &str) -> Self {
            self.u8(b't').i32(v.len() as i32).raw(v.as_bytes())
        }
    }

    // 2016-11-04 13:51:30.123456 UTC, in µs since 2000-01-01 and since 1970-01-01.
    const TS_PG: i64 = 531_582_690_123_456;
    const TS_UNIX: i64 = 1_478_267_490_123_456;

    fn begin() -> Vec<u8> {
        W::tag(b'B')
            .u64(0x0000_0001_0000_0a28)
            .i64(TS_PG)
            .u32(7777)
            .0
    }

    fn relation(in_stream: bool) -> Vec<u8> {
        let mut w = W::tag(b'R');
        if in_stream {
            w = w.u32(901);
        }
        w.u32(16_384)
            .str("public")
            .str("orders")
            .u8(b'd')
            .u16(3)
            .u8(1)
            .str("id")
            .u32(23)
            .i32(-1)
            .u8(0)
            .str("note")
            .u32(1043)
            .i32(68)
            .u8(0)
            .str("blob")
            .u32(17)
            .i32(-1)
            .0
    }

    fn update_full() -> Vec<u8> {
        W::tag(b'U')
            .u32(16_384)
            .u8(b'O')
            .u16(3)
            .text("1")
            .text("old")
            .u8(b'n')
            .u8(b'N')
            .u16(3)
            .text("1")
            .text("new")
            .u8(b'u')
            .0
    }

    #[test]
    fn begin_commit_and_timestamps() {
        assert_eq!(
            decode(&begin(), false).unwrap(),
            Message::Begin {
                final_lsn: Lsn(0x0000_0001_0000_0a28),
                commit_ts_us: TS_UNIX,
                xid: 7777
            }
        );
        let commit = W::tag(b'C').u8(0).u64(10).u64(20).i64(0).0;
        assert_eq!(
            decode(&commit, false).unwrap(),
            Message::Commit {
                flags: 0,
                commit_lsn: Lsn(10),
                end_lsn: Lsn(20),
                commit_ts_us: PG_EPOCH_OFFSET_US
            }
        );
        // Extreme wire timestamps saturate instead of overflowing.
        let commit = W::tag(b'C').u8(0).u64(1).u64(2).i64(i64::MAX).0;
        match decode(&commit, false).unwrap() {
            Message::Commit { commit_ts_us, .. } => assert_eq!(commit_ts_us, i64::MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn origin() {
        let m = W::tag(b'O').u64(0xAB).str("node_a").0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Origin {
                commit_lsn: Lsn(0xAB),
                name: "node_a".into()
            }
        );
    }

    #[test]
    fn relation_outside_and_inside_stream() {
        let expected_columns = vec![
            RelationColumn {
                is_key: true,
                name: "id".into(),
                type_oid: 23,
                type_modifier: -1,
            },
            RelationColumn {
                is_key: false,
                name: "note".into(),
                type_oid: 1043,
                type_modifier: 68,
            },
            RelationColumn {
                is_key: false,
                name: "blob".into(),
                type_oid: 17,
                type_modifier: -1,
            },
        ];
        assert_eq!(
            decode(&relation(false), false).unwrap(),
            Message::Relation(Relation {
                xid: None,
                oid: 16_384,
                namespace: "public".into(),
                name: "orders".into(),
                replica_identity: b'd',
                columns: expected_columns.clone(),
            })
        );
        match decode(&relation(true), true).unwrap() {
            Message::Relation(rel) => {
                assert_eq!(rel.xid, Some(901));
                assert_eq!(rel.oid, 16_384);
                assert_eq!(rel.columns, expected_columns);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_namespace_is_pg_catalog() {
        let m = W::tag(b'R').u32(1).str("").str("t").u8(b'f').u16(0).0;
        match decode(&m, false).unwrap() {
            Message::Relation(rel) => {
                assert_eq!(rel.namespace, "pg_catalog");
                assert_eq!(rel.replica_identity, b'f');
                assert!(rel.columns.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let t = W::tag(b'Y').u32(5).u32(16_500).str("").str("mood").0;
        assert_eq!(
            decode(&t, true).unwrap(),
            Message::Type {
                xid: Some(5),
                oid: 16_500,
                namespace: "pg_catalog".into(),
                name: "mood".into()
            }
        );
    }

    #[test]
    fn insert_with_every_field_kind() {
        let m = W::tag(b'I')
            .u32(16_384)
            .u8(b'N')
            .u16(4)
            .text("42")
            .u8(b'n')
            .u8(b'u')
            .u8(b'b')
            .i32(2)
            .raw(&[0, 0xff])
            .0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Insert {
                xid: None,
                relation: 16_384,
                new: Tuple(vec![
                    TupleField::Text(b"42".to_vec()),
                    TupleField::Null,
                    TupleField::UnchangedToast,
                    TupleField::Binary(vec![0, 0xff]),
                ])
            }
        );
        assert_eq!(TupleField::Text(b"42".to_vec()).as_text(), Some(Ok("42")));
        assert_eq!(TupleField::Null.as_text(), None);
    }

    #[test]
    fn insert_empty_text_and_empty_tuple() {
        let m = W::tag(b'I').u32(1).u8(b'N').u16(1).text("").0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Insert {
                xid: None,
                relation: 1,
                new: Tuple(vec![TupleField::Text(Vec::new())])
            }
        );
        let m = W::tag(b'I').u32(1).u8(b'N').u16(0).0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Insert {
                xid: None,
                relation: 1,
                new: Tuple(vec![])
            }
        );
    }

    #[test]
    fn update_with_full_old_tuple() {
        assert_eq!(
            decode(&update_full(), false).unwrap(),
            Message::Update {
                xid: None,
                relation: 16_384,
                old: Some(OldTuple {
                    kind: OldKind::Full,
                    tuple: Tuple(vec![
                        TupleField::Text(b"1".to_vec()),
                        TupleField::Text(b"old".to_vec()),
                        TupleField::Null,
                    ])
                }),
                new: Tuple(vec![
                    TupleField::Text(b"1".to_vec()),
                    TupleField::Text(b"new".to_vec()),
                    TupleField::UnchangedToast,
                ])
            }
        );
    }

    #[test]
    fn update_with_key_and_without_old() {
        let m = W::tag(b'U')
            .u32(12)
            .u32(16_384)
            .u8(b'K')
            .u16(2)
            .text("1")
            .u8(b'n')
            .u8(b'N')
            .u16(2)
            .text("2")
            .text("x")
            .0;
        assert_eq!(
            decode(&m, true).unwrap(),
            Message::Update {
                xid: Some(12),
                relation: 16_384,
                old: Some(OldTuple {
                    kind: OldKind::Key,
                    tuple: Tuple(vec![TupleField::Text(b"1".to_vec()), TupleField::Null])
                }),
                new: Tuple(vec![
                    TupleField::Text(b"2".to_vec()),
                    TupleField::Text(b"x".to_vec())
                ])
            }
        );
        let m = W::tag(b'U').u32(3).u8(b'N').u16(1).text("v").0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Update {
                xid: None,
                relation: 3,
                old: None,
                new: Tuple(vec![TupleField::Text(b"v".to_vec())])
            }
        );
    }

    #[test]
    fn delete_key_and_full() {
        let m = W::tag(b'D').u32(9).u8(b'K').u16(2).text("7").u8(b'n').0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Delete {
                xid: None,
                relation: 9,
                old: OldTuple {
                    kind: OldKind::Key,
                    tuple: Tuple(vec![TupleField::Text(b"7".to_vec()), TupleField::Null])
                }
            }
        );
        let m = W::tag(b'D').u32(44).u32(9).u8(b'O').u16(1).text("7").0;
        assert_eq!(
            decode(&m, true).unwrap(),
            Message::Delete {
                xid: Some(44),
                relation: 9,
                old: OldTuple {
                    kind: OldKind::Full,
                    tuple: Tuple(vec![TupleField::Text(b"7".to_vec())])
                }
            }
        );
    }

    #[test]
    fn truncate() {
        let m = W::tag(b'T')
            .i32(2)
            .u8(TRUNCATE_CASCADE | TRUNCATE_RESTART_IDENTITY)
            .u32(100)
            .u32(200)
            .0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Truncate {
                xid: None,
                options: 3,
                relations: vec![100, 200]
            }
        );
        let m = W::tag(b'T').u32(8).i32(1).u8(0).u32(100).0;
        assert_eq!(
            decode(&m, true).unwrap(),
            Message::Truncate {
                xid: Some(8),
                options: 0,
                relations: vec![100]
            }
        );
    }

    #[test]
    fn logical_message() {
        let m = W::tag(b'M')
            .u8(1)
            .u64(0x99)
            .str("wal2x")
            .i32(3)
            .raw(b"a\0b")
            .0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::Message {
                xid: None,
                transactional: true,
                lsn: Lsn(0x99),
                prefix: "wal2x".into(),
                content: b"a\0b".to_vec()
            }
        );
        let m = W::tag(b'M').u32(5).u8(0).u64(1).str("p").i32(0).0;
        assert_eq!(
            decode(&m, true).unwrap(),
            Message::Message {
                xid: Some(5),
                transactional: false,
                lsn: Lsn(1),
                prefix: "p".into(),
                content: vec![]
            }
        );
    }

    #[test]
    fn stream_messages() {
        assert_eq!(
            decode(&W::tag(b'S').u32(700).u8(1).0, false).unwrap(),
            Message::StreamStart {
                xid: 700,
                first_segment: true
            }
        );
        assert_eq!(
            decode(&W::tag(b'S').u32(700).u8(0).0, false).unwrap(),
            Message::StreamStart {
                xid: 700,
                first_segment: false
            }
        );
        assert_eq!(decode(b"E", true).unwrap(), Message::StreamStop);
        let m = W::tag(b'c').u32(700).u8(0).u64(5).u64(6).i64(TS_PG).0;
        assert_eq!(
            decode(&m, false).unwrap(),
            Message::StreamCommit {
                xid: 700,
                flags: 0,
                commit_lsn: Lsn(5),
                end_lsn: Lsn(6),
                commit_ts_us: TS_UNIX
            }
        );
        assert_eq!(
            decode(&W::tag(b'A').u32(700).u32(701).0, false).unwrap(),
            Message::StreamAbort {
                xid: 700,
                subxid: 701
            }
        );
    }

    #[test]
    fn error_messages_name_field_and_offset() {
        let e = decode(b"I\x00\x00\x40", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated Insert message: needed 4 bytes for the relation oid at offset 1, 3 left"
        );
        assert_eq!(decode(b"", false).unwrap_err(), DecodeError::Empty);
        let e = decode(b"z123", false).unwrap_err();
        assert_eq!(e, DecodeError::UnknownTag { tag: b'z' });
        assert_eq!(e.to_string(), "unknown pgoutput message tag 0x7a (z)");
        assert_eq!(
            decode(b"\x01", false).unwrap_err().to_string(),
            "unknown pgoutput message tag 0x01 (\\u{1})"
        );

        // Truncated text value inside a tuple names the column.
        let mut m = W::tag(b'I')
            .u32(1)
            .u8(b'N')
            .u16(2)
            .text("ab")
            .u8(b't')
            .i32(5)
            .0;
        m.extend_from_slice(b"xy");
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "truncated Insert message: needed 5 bytes for the new tuple value of column 1 at \
             offset 20, 2 left"
        );

        // Negative length.
        let m = W::tag(b'I').u32(1).u8(b'N').u16(1).u8(b't').i32(-1).0;
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "invalid Insert message: the new tuple value length of column 0 at offset 9 is \
             negative"
        );

        // Unknown column kind.
        let m = W::tag(b'D').u32(1).u8(b'K').u16(1).u8(b'x').0;
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "invalid Delete message: the old tuple column kind of column 0 at offset 8 is 0x78 \
             ('x'), expected 'n', 'u', 't' or 'b'"
        );

        // Bad tuple marker.
        let m = W::tag(b'U').u32(1).u8(b'Q').0;
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "invalid Update message: the tuple marker at offset 5 is 0x51 ('Q'), expected 'K', \
             'O' or 'N'"
        );

        // Unterminated string.
        let m = W::tag(b'O').u64(1).raw(b"abc").0;
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "truncated Origin message: the origin name at offset 9 has no NUL terminator (3 \
             bytes left)"
        );

        // Invalid UTF-8 in a name.
        let m = W::tag(b'O').u64(1).raw(b"a\xffb\0").0;
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "invalid Origin message: the origin name at offset 9 is not valid UTF-8 (at byte 1)"
        );

        // Trailing bytes.
        let mut m = begin();
        m.push(0);
        assert_eq!(
            decode(&m, false).unwrap_err(),
            DecodeError::TrailingBytes {
                message: "Begin",
                offset: 21,
                left: 1
            }
        );

        // Negative truncate count.
        let m = W::tag(b'T').i32(-2).u8(0).0;
        assert_eq!(
            decode(&m, false).unwrap_err().to_string(),
            "invalid Truncate message: the relation count at offset 1 is negative"
        );
    }

    #[test]
    fn stream_flag_matters() {
        // An in-stream insert decoded as out-of-stream misreads the xid as the relation and
        // then fails on the marker: the caller's state must be right, and mistakes are loud.
        let m = W::tag(b'I').u32(5).u32(16_384).u8(b'N').u16(0).0;
        assert!(decode(&m, false).is_err());
        assert_eq!(
            decode(&m, true).unwrap(),
            Message::Insert {
                xid: Some(5),
                relation: 16_384,
                new: Tuple(vec![])
            }
        );
    }

    #[test]
    fn huge_counts_do_not_allocate_or_panic() {
        let m = W::tag(b'T').i32(i32::MAX).u8(0).u32(1).0;
        assert!(matches!(
            decode(&m, false),
            Err(DecodeError::Truncated {
                field: "relation oid",
                ..
            })
        ));
        let m = W::tag(b'I').u32(1).u8(b'N').u16(u16::MAX).0;
        assert!(decode(&m, false).is_err());
        let m = W::tag(b'M').u8(1).u64(1).str("p").i32(i32::MAX).0;
        assert!(matches!(
            decode(&m, false),
            Err(DecodeError::Truncated {
                needed: 2_147_483_647,
                left: 0,
                ..
            })
        ));
    }

    fn valid_messages() -> Vec<(Vec<u8>, bool)> {
        vec![
            (begin(), false),
            (W::tag(b'C').u8(0).u64(10).u64(20).i64(0).0, false),
            (W::tag(b'O').u64(0xAB).str("node_a").0, false),
            (relation(false), false),
            (relation(true), true),
            (W::tag(b'Y').u32(16_500).str("public").str("mood").0, false),
            (update_full(), false),
            (
                W::tag(b'I')
                    .u32(1)
                    .u8(b'N')
                    .u16(3)
                    .text("x")
                    .u8(b'n')
                    .u8(b'b')
                    .i32(1)
                    .raw(b"\x01")
                    .0,
                false,
            ),
            (
                W::tag(b'D').u32(9).u8(b'K').u16(2).text("7").u8(b'n').0,
                false,
            ),
            (W::tag(b'T').i32(2).u8(0).u32(1).u32(2).0, false),
            (
                W::tag(b'M').u8(1).u64(5).str("pfx").i32(2).raw(b"hi").0,
                false,
            ),
            (W::tag(b'S').u32(1).u8(1).0, false),
            (W::tag(b'c').u32(1).u8(0).u64(1).u64(2).i64(3).0, false),
            (W::tag(b'A').u32(1).u32(2).0, false),
        ]
    }

    #[test]
    fn every_prefix_of_valid_messages_errors_without_panicking() {
        for (msg, in_stream) in valid_messages() {
            assert!(decode(&msg, in_stream).is_ok(), "{msg:?}");
            for end in 0..msg.len() {
                let prefix = msg.get(..end).unwrap();
                let err = decode(prefix, in_stream).unwrap_err();
                // Errors always render, and point inside (or just past) the prefix.
                let text = err.to_string();
                assert!(!text.is_empty());
                match err {
                    DecodeError::Truncated { offset, .. }
                    | DecodeError::Unterminated { offset, .. } => {
                        assert!(offset <= end, "{text} for prefix of {end} bytes")
                    }
                    DecodeError::Empty => assert_eq!(end, 0),
                    other => panic!("unexpected {other:?} for a prefix of {msg:?}"),
                }
            }
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let tags = b"BCORYIUDTMSEcAxN\0";
        let valid = valid_messages();
        let mut decoded_ok = 0usize;
        for i in 0..6000u32 {
            let len = (rng.next() % 48) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias towards known tags and small lengths so decoding gets deep into messages.
            if let Some(first) = buf.first_mut() {
                *first = tags[(rng.next() % tags.len() as u64) as usize];
            }
            if i % 3 == 0 {
                // Mutate a valid message: flip a few bytes.
                let (msg, _) = &valid[(rng.next() % valid.len() as u64) as usize];
                buf = msg.clone();
                for _ in 0..(1 + rng.next() % 3) {
                    let at = (rng.next() % buf.len() as u64) as usize;
                    buf[at] = rng.next() as u8;
                }
            }
            let in_stream = rng.next() & 1 == 1;
            match decode(&buf, in_stream) {
                Ok(m) => {
                    decoded_ok += 1;
                    let _ = format!("{m:?}");
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        // Some mutations only touch values, so some inputs must still decode.
        assert!(decoded_ok > 0);
    }
}
