//! Write [walrelay](https://example.invalid/walrelay) plugins: one trait, one macro.
//!
//! A plugin is a WebAssembly component (target `wasm32-wasip2`) that sits in walrelay's pipeline
//! between PostgreSQL and the Debezium encoder. It sees change [`Event`]s and returns what should
//! go on: the same events (possibly modified), fewer (a filter), more (a fan-out) or plain
//! [`Record`]s written as they are.
//!
//! Implement [`Plugin`] and name the type in [`export_plugin!`]:
//!
//! ```
//! use walrelay_plugin_sdk::prelude::*;
//!
//! /// Drops deletes, passes everything else.
//! struct NoDeletes;
//!
//! impl Plugin for NoDeletes {
//!     fn new(_config: Config) -> Result<Self, String> {
//!         Ok(NoDeletes)
//!     }
//!     fn on_event(&mut self, event: Event) -> Result<Emit, String> {
//!         Ok(if event.op() == Op::Delete { Emit::Drop } else { Emit::Keep(event) })
//!     }
//! }
//!
//! walrelay_plugin_sdk::export_plugin!(NoDeletes);
//! # fn main() {}
//! ```
//!
//! The crate needs `crate-type = ["cdylib"]` and builds with
//! `cargo build --release --target wasm32-wasip2`; the `.wasm` file is the component.
//!
//! Values are positional in the wire format; [`Event`] gives access by column name and keeps
//! track of renamed, removed, added and retyped columns: the SDK then describes the new shape to
//! the relay on its own. [`testing::Harness`] runs a plugin natively, for `#[test]`s.
//!
//! A panic in a plugin aborts its instance (a WebAssembly trap); return `Err` to refuse an event
//! or a batch instead.

#![warn(missing_docs)]

mod config;
mod event;
pub mod pg_text;
mod runtime;
pub mod testing;

/// The bindings `wit-bindgen` generates for `wit/v0.1.0` (world `plugin`). Not part of the API:
/// use the re-exported types at the crate root.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_walrelay_plugin",
        default_bindings_module: "walrelay_plugin_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

use bindings::walrelay::plugin::types as wit;

pub use config::Config;
pub use event::{Event, Row};
/// The JSON library [`Config`] is built on, for plugins that deserialize their configuration.
pub use serde_json;
pub use wit::{
    Column, Header, Level, Op, PlainRecord as Record, ReplicaIdentity, SnapshotMarker, Source,
    Table, Value,
};

/// What a plugin wants to see. The relay passes every other event around the plugin unchanged,
/// without calling it.
///
/// ```
/// # use walrelay_plugin_sdk::{Interest, Op};
/// let interest = Interest::all().only_tables(["public.users"]).only_ops([Op::Create, Op::Update]);
/// ```
pub use wit::Interest;

/// The usual imports for a plugin: `use walrelay_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        glob, host_log, Column, Config, Emit, Event, Header, Interest, Level, Op, Output, Plugin,
        Record, Row, Table, Value,
    };
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included)
/// and every other character stands for itself. Plugins match `schema.table.column` names
/// part by part with it: `glob("*_at", "created_at")`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty(); // no `*`: an exact match
    };
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod glob_tests {
    use super::glob;

    #[test]
    fn stars_match_any_run_and_nothing_else_is_special() {
        assert!(glob("email", "email"));
        assert!(!glob("email", "emails"));
        assert!(glob("*", ""));
        assert!(glob("*_at", "created_at"));
        assert!(glob("c*d*_at", "created_at"));
        assert!(!glob("*_at", "created_on"));
        assert!(glob("a*a", "aa"));
        assert!(!glob("a*a", "a"));
        assert!(glob("**", "x"));
        assert!(glob("é*", "été"));
        assert!(!glob("a.c", "abc"), "a dot is a dot");
    }
}

/// A walrelay plugin. One instance lives for as long as the relay runs it (until it restarts the
/// plugin), so it may keep state between events and batches.
///
/// Implement [`new`](Plugin::new) and [`on_event`](Plugin::on_event) for a per-event plugin, or
/// [`on_batch`](Plugin::on_batch) to see a whole batch at once; then name the type in
/// [`export_plugin!`]. The plugin's name and version reported to the relay are the crate's
/// (`CARGO_PKG_NAME`, `CARGO_PKG_VERSION`).
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from its `config` (the YAML's `config:` block as JSON; JSON `null` when
    /// absent). An error refuses the configuration: the relay shows it and does not start.
    fn new(config: Config) -> Result<Self, String>;

    /// Which tables and ops the plugin sees (every other event goes around it) and which
    /// columns' values it reads or writes (the others arrive [`Value::Withheld`] and are put
    /// back by the relay: declare them and every event costs less). Asked once, right after
    /// [`new`](Plugin::new). The default is everything.
    fn interest(&self) -> Interest {
        Interest::all()
    }

    /// Handles one event: keep it (possibly modified), drop it, or replace it with any number of
    /// events and records. An `Err` fails the event: the relay applies the plugin's failure
    /// policy to it (the other events of its batch are unaffected).
    ///
    /// The default keeps the event unchanged; a plugin that implements
    /// [`on_batch`](Plugin::on_batch) need not implement this.
    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        Ok(Emit::Keep(event))
    }

    /// Handles a batch, in order. Implement it to see several events at once (to merge,
    /// reorder or aggregate); the default calls [`on_event`](Plugin::on_event) for each event.
    ///
    /// An `Err` fails the batch: the relay then runs its events one batch each, so only the
    /// culprit meets the failure policy.
    fn on_batch(&mut self, events: Vec<Event>) -> Result<Vec<Output>, String> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            match self.on_event(event)? {
                Emit::Drop => {}
                Emit::Keep(event) => out.push(Output::Event(event)),
                Emit::Many(outputs) => out.extend(outputs),
            }
        }
        Ok(out)
    }
}

/// What [`Plugin::on_event`] makes of an event.
// `Keep` is the common case, once per event: boxing the event would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Emit {
    /// Nothing goes on: the event is filtered out.
    Drop,
    /// One event goes on: the input (possibly modified) or another.
    Keep(Event),
    /// Any number of events and records go on, in this order.
    Many(Vec<Output>),
}

impl From<Event> for Emit {
    fn from(event: Event) -> Self {
        Emit::Keep(event)
    }
}

impl From<Record> for Emit {
    fn from(record: Record) -> Self {
        Emit::Many(vec![Output::Record(record)])
    }
}

/// One item of a plugin's output.
#[derive(Debug, Clone)]
pub enum Output {
    /// A change event: the relay encodes it as Debezium JSON against its table's (possibly
    /// derived) descriptor.
    Event(Event),
    /// A record written as it is, bypassing the encoder.
    Record(Record),
}

impl From<Event> for Output {
    fn from(event: Event) -> Self {
        Output::Event(event)
    }
}

impl From<Record> for Output {
    fn from(record: Record) -> Self {
        Output::Record(record)
    }
}

impl Interest {
    /// Every table and every op.
    pub fn all() -> Self {
        Interest {
            tables: None,
            ops: None,
            columns: None,
        }
    }

    /// Only the values of these columns, by name (`*` matches any characters), in every table:
    /// the values of other columns arrive as [`Value::Withheld`] (the relay puts them back), and
    /// every event costs less to send. A plugin that reads or changes no value at all (it looks
    /// at ops, tables, topics or descriptors only) passes an empty list. A plugin that adds or
    /// removes columns sends whole events, which cannot carry withheld values: it keeps the
    /// default (every column).
    pub fn only_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Only these tables, as `schema.table` names (exact, no patterns).
    pub fn only_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tables = Some(tables.into_iter().map(Into::into).collect());
        self
    }

    /// Only these ops.
    pub fn only_ops<I: IntoIterator<Item = Op>>(mut self, ops: I) -> Self {
        self.ops = Some(ops.into_iter().collect());
        self
    }
}

impl Record {
    /// A record for `topic` with this key and value (a `None` value is a tombstone), no headers.
    pub fn new(topic: impl Into<String>, key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Self {
        Record {
            topic: topic.into(),
            key,
            value,
            headers: Vec::new(),
        }
    }
}

impl Header {
    /// A header; the value is bytes (a `&str` or `String` converts).
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl Column {
    /// A column of type `type_oid` named `type_name` (see [`oid`]): nullable, not part of the
    /// key, no type modifier, no default, no enum labels.
    pub fn new(name: impl Into<String>, type_oid: u32, type_name: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            type_oid,
            type_modifier: -1,
            type_name: type_name.into(),
            base_type_oid: type_oid,
            nullable: true,
            is_key: false,
            default_expr: None,
            enum_labels: Vec::new(),
        }
    }

    /// Makes this column a `text` column (type, base type, modifier, enum labels), keeping its
    /// name, nullability and key flag. For a column whose values a plugin replaces by text.
    pub fn set_text_type(&mut self) {
        self.type_oid = oid::TEXT;
        self.base_type_oid = oid::TEXT;
        self.type_modifier = -1;
        self.type_name = "text".to_string();
        self.default_expr = None;
        self.enum_labels.clear();
    }
}

impl Table {
    /// `schema.name`, the form [`Interest`] and the relay's configuration use.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// PostgreSQL type oids of the built-in types walrelay maps to [`Value`] variants.
pub mod oid {
    #![allow(missing_docs)]
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Writes `message` to the relay's log at `level`, tagged with the plugin's name. Outside
/// WebAssembly (tests), prints it to stderr.
pub fn host_log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::walrelay::plugin::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Exports a [`Plugin`] as the component's `transform` interface. Use it once, in the plugin's
/// `cdylib` crate:
///
/// ```ignore
/// walrelay_plugin_sdk::export_plugin!(MyPlugin);
/// ```
///
/// The name and version the plugin reports are the invoking crate's `CARGO_PKG_NAME` and
/// `CARGO_PKG_VERSION`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __WALRELAY_RUNTIME: ::core::cell::RefCell<
                    ::core::option::Option<$crate::__private::Runtime<$plugin>>,
                > = const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct __WalrelayGuest;

            impl $crate::__private::Guest for __WalrelayGuest {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::__private::PluginInfo, ::std::string::String>
                {
                    __WALRELAY_RUNTIME.with(|cell| {
                        $crate::__private::init::<$plugin>(
                            &mut cell.borrow_mut(),
                            &config,
                            ::core::env!("CARGO_PKG_NAME"),
                            ::core::env!("CARGO_PKG_VERSION"),
                        )
                    })
                }

                fn transform(
                    tables: ::std::vec::Vec<$crate::Table>,
                    events: ::std::vec::Vec<$crate::__private::ChangeEvent>,
                ) -> ::core::result::Result<$crate::__private::BatchOutput, ::std::string::String>
                {
                    __WALRELAY_RUNTIME.with(|cell| {
                        $crate::__private::transform::<$plugin>(
                            &mut cell.borrow_mut(),
                            tables,
                            events,
                        )
                    })
                }
            }

            $crate::bindings::__export_walrelay_plugin!(
                __WalrelayGuest with_types_in $crate::bindings
            );
        };
    };
}

/// What [`export_plugin!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::walrelay::plugin::transform::Guest;
    pub use crate::runtime::{init, transform, Runtime};
    pub use crate::wit::{BatchOutput, ChangeEvent, EventPatch, PluginInfo};
}

/// The SDK's hash maps: keyed by descriptor ids and column names, which the relay chooses, so a
/// fixed hash (FNV-1a) does; std's randomly seeded one would make every plugin import
/// `wasi:random/insecure-seed`.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests;
