//! [`Event`]: a change event with access by column name.

use std::sync::{Arc, Mutex};

use crate::wit::{self, ChangeEvent};
use crate::{Column, Header, Op, Source, Table, Value};

/// Which row of an event: the old one or the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Row {
    /// The old row: sent for updates and deletes, as the table's replica identity allows.
    Before,
    /// The new row: sent for inserts, updates and snapshot reads.
    After,
}

/// An input table descriptor with its name index, shared by every event of the table.
#[derive(Debug)]
pub(crate) struct TableInfo {
    pub(crate) table: Table,
    index: crate::Map<String, u32>,
    /// Renamed copies of input columns, by position and new name: a plugin renaming a column
    /// renames it in every event, and one copy serves them all (events of one shape then
    /// compare equal by pointer when the SDK looks up their descriptor).
    renamed: Mutex<Vec<(u32, Arc<Column>)>>,
}

impl TableInfo {
    pub(crate) fn new(table: Table) -> Self {
        let index = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i as u32))
            .collect();
        TableInfo {
            table,
            index,
            renamed: Mutex::new(Vec::new()),
        }
    }

    /// Input column `pos` renamed to `name`.
    fn renamed(&self, pos: u32, name: &str) -> Arc<Column> {
        let mut renamed = self.renamed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = renamed.iter().find(|(p, c)| *p == pos && c.name == name) {
            return Arc::clone(c);
        }
        let mut column = self.table.columns[pos as usize].clone();
        column.name = name.to_string();
        let column = Arc::new(column);
        // Names made per event (from values, say) are not worth keeping.
        if renamed.len() < 64 {
            renamed.push((pos, Arc::clone(&column)));
        }
        column
    }
}

/// One column of a changed shape: an input column as it was, or a column of the plugin's own
/// (renamed, retyped or added).
#[derive(Debug, Clone)]
pub(crate) enum ShapeCol {
    Input(u32),
    Own(Arc<Column>),
}

impl PartialEq for ShapeCol {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ShapeCol::Input(a), ShapeCol::Input(b)) => a == b,
            // The same renamed column (see `TableInfo::renamed`) is the same allocation.
            (ShapeCol::Own(a), ShapeCol::Own(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        }
    }
}

/// A change event: an insert, update, delete, snapshot read or truncate of one table.
///
/// Rows are read and written by column name ([`get`](Event::get), [`set`](Event::set),
/// [`rename`](Event::rename), [`remove`](Event::remove), ...). Changing the columns (renaming,
/// removing, adding or retyping one) changes the event's *shape*: the SDK then describes the
/// output table to the relay itself, once per distinct shape. An event whose columns are left
/// alone goes on against its input descriptor at no extra cost.
///
/// Cloning an event (for a fan-out) copies its rows and headers, not its table descriptor.
#[derive(Debug, Clone)]
pub struct Event {
    pub(crate) raw: ChangeEvent,
    pub(crate) table: Arc<TableInfo>,
    /// `Some` once the columns differ from the input descriptor's.
    pub(crate) shape: Option<Vec<ShapeCol>>,
    /// Set by the test-only raw access: the event goes out exactly as `raw` says.
    pub(crate) unchecked: bool,
    /// The event's position in the input batch.
    pub(crate) input: u32,
    /// The `transform` call the event came with: an event kept for a later call goes back
    /// whole (its position names an event of another batch there).
    pub(crate) call: u64,
    /// What changed since the input: only that goes back to the relay.
    pub(crate) edits: Edits,
}

/// What a plugin changed in an input event. An event with no edits goes back as `keep`, one
/// with edits as a `patch` carrying only them, and one whose rows changed width (a column added
/// or removed) whole.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edits {
    pub(crate) whole: bool,
    pub(crate) op: bool,
    pub(crate) topic: bool,
    pub(crate) headers: bool,
    /// Positions written, unsorted and possibly repeated: in the old row with
    /// [`Edits::BEFORE`] set, in the new row without.
    pub(crate) written: Vec<u32>,
}

impl Edits {
    /// The flag of a position in the old row.
    pub(crate) const BEFORE: u32 = 1 << 31;

    pub(crate) fn is_empty(&self) -> bool {
        !(self.whole || self.op || self.topic || self.headers || !self.written.is_empty())
    }
}

impl Event {
    pub(crate) fn new(raw: ChangeEvent, table: Arc<TableInfo>, input: u32, call: u64) -> Self {
        Event {
            raw,
            table,
            shape: None,
            unchecked: false,
            input,
            call,
            edits: Edits::default(),
        }
    }

    /// The kind of change.
    pub fn op(&self) -> Op {
        self.raw.op
    }

    /// Changes the kind of change (e.g. a delete into an update). The rows must then fit the new
    /// op: `after` is required by every op but delete and truncate.
    pub fn set_op(&mut self, op: Op) {
        self.edits.op |= self.raw.op != op;
        self.raw.op = op;
    }

    /// The table descriptor the event came with: schema, name and the columns *as received*.
    /// For the event's current columns see [`columns`](Event::columns).
    pub fn table(&self) -> &Table {
        &self.table.table
    }

    /// The table's schema, e.g. `public`.
    pub fn schema(&self) -> &str {
        &self.table.table.schema
    }

    /// The table's name (without schema).
    pub fn table_name(&self) -> &str {
        &self.table.table.name
    }

    /// The position of the change in the WAL, commit time and snapshot marker. Read-only: the
    /// relay owns it.
    pub fn source(&self) -> &Source {
        &self.raw.source
    }

    /// The destination topic: the one the event was routed to, or else its table's default
    /// (`<prefix>.<schema>.<table>`, as the relay names it).
    pub fn topic(&self) -> &str {
        self.raw.topic.as_deref().unwrap_or(&self.table.table.topic)
    }

    /// The topic the event was routed to (by this plugin or an earlier one); `None` when it
    /// goes to its table's default topic.
    pub fn routed_topic(&self) -> Option<&str> {
        self.raw.topic.as_deref()
    }

    /// Routes the event to another topic.
    pub fn set_topic(&mut self, topic: impl Into<String>) {
        self.edits.topic = true;
        self.raw.topic = Some(topic.into());
    }

    /// The record headers, in order.
    pub fn headers(&self) -> &[Header] {
        self.raw.headers.as_deref().unwrap_or_default()
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers()
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.as_slice())
    }

    /// Appends a header (keys may repeat, as in Kafka).
    pub fn add_header(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.edits.headers = true;
        self.raw
            .headers
            .get_or_insert_with(Vec::new)
            .push(Header::new(key, value));
    }

    /// Removes every header named `key`; returns how many there were.
    pub fn remove_header(&mut self, key: &str) -> usize {
        let Some(headers) = &mut self.raw.headers else {
            return 0;
        };
        let before = headers.len();
        headers.retain(|h| h.key != key);
        let removed = before - headers.len();
        self.edits.headers |= removed > 0;
        removed
    }

    /// The event's current columns, in row order: the input descriptor's, unless the plugin
    /// changed them.
    pub fn columns(&self) -> impl Iterator<Item = &Column> + '_ {
        let input = &self.table.table.columns;
        let (plain, shaped) = match &self.shape {
            None => (Some(input.iter()), None),
            Some(shape) => (None, Some(shape.iter().map(move |c| self.shape_col(c)))),
        };
        plain
            .into_iter()
            .flatten()
            .chain(shaped.into_iter().flatten())
    }

    /// The current column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        let pos = self.position(name)?;
        Some(match &self.shape {
            None => &self.table.table.columns[pos],
            Some(shape) => self.shape_col(&shape[pos]),
        })
    }

    /// Whether the event has a column named `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The position of column `name` in the rows.
    pub fn position(&self, name: &str) -> Option<usize> {
        match &self.shape {
            None => self.table.index.get(name).map(|&i| i as usize),
            Some(shape) => shape.iter().position(|c| self.shape_col(c).name == name),
        }
    }

    /// A row's values in column order; `None` when the event has no such row (no `before` for
    /// an insert, no `after` for a delete).
    pub fn row(&self, row: Row) -> Option<&[Value]> {
        self.row_ref(row).as_deref()
    }

    /// The value of column `name` in `row`; `None` when there is no such column or row.
    pub fn get(&self, row: Row, name: &str) -> Option<&Value> {
        let pos = self.position(name)?;
        self.row_ref(row).as_ref()?.get(pos)
    }

    /// The value of column `name` in `row`, to change in place.
    pub fn get_mut(&mut self, row: Row, name: &str) -> Option<&mut Value> {
        let pos = self.position(name)?;
        let len = self.row_ref(row).as_ref()?.len();
        if pos >= len {
            return None;
        }
        self.edits.written.push(match row {
            Row::Before => pos as u32 | Edits::BEFORE,
            Row::After => pos as u32,
        });
        self.row_mut(row).as_mut()?.get_mut(pos)
    }

    /// Sets column `name` in `row` to `value`. Returns `false` (and changes nothing) when there
    /// is no such column or row; add columns with [`add_column`](Event::add_column).
    pub fn set(&mut self, row: Row, name: &str, value: Value) -> bool {
        match self.get_mut(row, name) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// Renames column `old` to `new`. Returns `false` (and changes nothing) when there is no
    /// column `old` or there already is a column `new`.
    pub fn rename(&mut self, old: &str, new: &str) -> bool {
        if old == new {
            return self.has_column(old);
        }
        let Some(pos) = self.position(old) else {
            return false;
        };
        if self.has_column(new) {
            return false;
        }
        let input = match &self.shape {
            None => Some(pos as u32),
            Some(shape) => match shape[pos] {
                ShapeCol::Input(i) => Some(i),
                ShapeCol::Own(_) => None,
            },
        };
        match input {
            // An input column as it came: its renamed copy is shared.
            Some(i) => {
                let column = self.table.renamed(i, new);
                self.shape_mut()[pos] = ShapeCol::Own(column);
            }
            None => self.own_column(pos).name = new.to_string(),
        }
        true
    }

    /// Removes column `name` from the event (its descriptor and both rows). Returns `false`
    /// when there is no such column.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(pos) = self.position(name) else {
            return false;
        };
        self.shape_mut().remove(pos);
        self.edits.whole = true;
        for values in [&mut self.raw.before, &mut self.raw.after]
            .into_iter()
            .flatten()
        {
            if pos < values.len() {
                values.remove(pos);
            }
        }
        true
    }

    /// Appends a column with its value in each row the event has (`before` is ignored when the
    /// event has no old row, `after` when it has no new row). Returns `false` (and changes
    /// nothing) when there already is a column of that name.
    pub fn add_column(&mut self, column: Column, before: Value, after: Value) -> bool {
        if self.has_column(&column.name) {
            return false;
        }
        self.shape_mut().push(ShapeCol::Own(Arc::new(column)));
        self.edits.whole = true;
        if let Some(values) = &mut self.raw.before {
            values.push(before);
        }
        if let Some(values) = &mut self.raw.after {
            values.push(after);
        }
        true
    }

    /// The descriptor of column `name`, to change (its type, say, after replacing its values;
    /// see [`Column::set_text_type`]). Rename with [`rename`](Event::rename), not through this.
    pub fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        let pos = self.position(name)?;
        Some(self.own_column(pos))
    }

    /// Whether the event's columns differ from its input descriptor's (so it goes out against
    /// a descriptor the SDK derives).
    pub fn shape_changed(&self) -> bool {
        self.shape.is_some()
    }

    /// Test fixtures only: the raw wire event, to build output the relay must reject. Once
    /// called, the event goes out exactly as the raw form says (table id, rows), unchecked, and
    /// name-based access no longer describes it.
    #[doc(hidden)]
    pub fn __raw_mut(&mut self) -> &mut ChangeEvent {
        self.unchecked = true;
        &mut self.raw
    }

    fn row_ref(&self, row: Row) -> &Option<Vec<Value>> {
        match row {
            Row::Before => &self.raw.before,
            Row::After => &self.raw.after,
        }
    }

    fn row_mut(&mut self, row: Row) -> &mut Option<Vec<Value>> {
        match row {
            Row::Before => &mut self.raw.before,
            Row::After => &mut self.raw.after,
        }
    }

    fn shape_col<'a>(&'a self, col: &'a ShapeCol) -> &'a Column {
        match col {
            ShapeCol::Input(i) => &self.table.table.columns[*i as usize],
            ShapeCol::Own(c) => c,
        }
    }

    fn shape_mut(&mut self) -> &mut Vec<ShapeCol> {
        let n = self.table.table.columns.len() as u32;
        self.shape
            .get_or_insert_with(|| (0..n).map(ShapeCol::Input).collect())
    }

    /// Column `pos` as a column of the plugin's own, to change.
    fn own_column(&mut self, pos: usize) -> &mut Column {
        let table = Arc::clone(&self.table);
        let slot = &mut self.shape_mut()[pos];
        if let ShapeCol::Input(i) = *slot {
            *slot = ShapeCol::Own(Arc::new(table.table.columns[i as usize].clone()));
        }
        match slot {
            ShapeCol::Own(c) => Arc::make_mut(c),
            ShapeCol::Input(_) => unreachable!(),
        }
    }
}

impl Value {
    /// Whether the value is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a `text`, `numeric`, `uuid` or `json` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Numeric(s) | Value::Uuid(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// An `int16`, `int32` or `int64` value.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// A `boolean` value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(v) => Some(v),
            _ => None,
        }
    }

    /// The value as text, `None` for `null`, `unchanged-toast` and `withheld`: strings as they are, numbers
    /// in decimal, bytes in PostgreSQL's hex form (`\x0a1b`), dates and times as their integer
    /// (days or microseconds).
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Null | Value::UnchangedToast | Value::Withheld => return None,
            Value::Boolean(v) => v.to_string(),
            Value::Int16(v) => v.to_string(),
            Value::Int32(v) | Value::Date(v) => v.to_string(),
            Value::Int64(v) | Value::Time(v) | Value::Timestamp(v) | Value::Timestamptz(v) => {
                v.to_string()
            }
            Value::Float32(v) => v.to_string(),
            Value::Float64(v) => v.to_string(),
            Value::Numeric(s) | Value::Text(s) | Value::Uuid(s) | Value::Json(s) => s.clone(),
            Value::Bytes(b) => {
                use std::fmt::Write;
                let mut s = String::with_capacity(2 + 2 * b.len());
                s.push_str("\\x");
                for byte in b {
                    let _ = write!(s, "{byte:02x}");
                }
                s
            }
        })
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int32(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

pub(crate) fn lower_source_default() -> Source {
    wit::Source {
        lsn: 0,
        last_commit_lsn: None,
        tx_id: None,
        ts_us: 0,
        snapshot: wit::SnapshotMarker::Streaming,
    }
}
