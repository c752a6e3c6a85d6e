//! Declarative plugin tests: a YAML file of cases, each a list of input events and the exact
//! output expected from one plugin (or the error it must fail with).
//!
//! The format is specified in `docs/events-format.md` (`plugins/<name>/tests/<case>.yaml`).
//! Tables and events are the objects of events files ([`crate::events_file`]), read by the same
//! code. Each case runs on a fresh [`PluginChain`] holding the one plugin (topic prefix `test`,
//! `on_error: fail`, no grants), so the component runs in the relay's real runtime, through the
//! same chain as in production. The limits are the production defaults except the time budget
//! of a call, [`AUTHOR_LIMITS`], raised so that a loaded test machine does not fail a test.
//!
//! `component` is a component's name, resolved as `<components>/<name>.wasm` (or, failing that,
//! with dashes turned into underscores, as cargo names the file); a value ending in `.wasm` is a
//! path, relative to the test file.
//!
//! # Comparison
//! Actual and expected outputs are compared item by item, as events-file lines:
//! * events on `op`, `table`, `before`, `after`, `topic` and `headers`; `source` only when the
//!   expected event gives it, and then only the fields it gives;
//! * an expected event is read against the table of the actual output at the same position when
//!   that has the expected table's name (so a reshaped table is compared by its output name and
//!   its new column names), else against the file's tables. Reading normalizes values
//!   (`"2016-11-04 13:51:30+02"` and `"2016-11-04 11:51:30+00"` are the same timestamptz);
//! * records on all their fields.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use super::chain::{OnError, PluginChain, PluginSpec, Scope};
use super::runtime::{Grants, Limits};
use crate::event::{ChangeEvent, Output};
use crate::events_file::{
    event_doc, event_from_doc, record_doc, source_doc, EventDoc, Fields, RecordDoc, TableDoc,
    Tables,
};

/// The topic prefix tests run with: default topics are `test.<schema>.<table>`.
pub const TEST_PREFIX: &str = "test";

/// The limits of author tools (`walrelay plugin test`, declarative tests): production's, but
/// 5 s per call instead of 100 ms.
pub const AUTHOR_LIMITS: Limits = Limits {
    cpu_ms_per_batch: 5_000,
    memory_mb: 64,
    max_output_bytes: 16 * 1024 * 1024,
    max_fan_out: 16,
};

/// A plugin spec for author tools: no pin, no signature, no grants, `on_error: fail`, all
/// tables and ops, [`AUTHOR_LIMITS`].
pub fn author_spec(
    name: &str,
    component: &Path,
    config_json: String,
    origin: String,
) -> PluginSpec {
    PluginSpec {
        name: name.to_string(),
        component: component.to_path_buf(),
        config_json,
        origin,
        limits: AUTHOR_LIMITS,
        on_error: OnError::Fail,
        scope: Scope::default(),
        grants: Grants::default(),
    }
}

/// A declarative test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The built component's name (`<components>/<component>.wasm`), or a `.wasm` path.
    pub component: String,
    /// The plugin's `config` (JSON `null` when absent).
    #[serde(default)]
    pub config: Json,
    /// Table objects, as in events files.
    #[serde(default)]
    pub tables: Vec<TableDoc>,
    pub cases: Vec<CaseDoc>,
}

/// One case of a [`TestFile`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDoc {
    pub name: String,
    /// Overrides the file's `config` (even with `null`).
    #[serde(default, deserialize_with = "present")]
    pub config: Option<Json>,
    /// Event objects, as in events files.
    #[serde(default)]
    pub input: Vec<Json>,
    /// Event or record objects: exactly the plugin's output, in order.
    #[serde(default)]
    pub output: Option<Vec<Json>>,
    /// Text the chain's error must contain (instead of `output`).
    #[serde(default)]
    pub error: Option<String>,
}

/// `Some` whenever the key is present, `null` included.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// Reads a declarative test file.
pub fn load(path: &Path) -> anyhow::Result<TestFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Why, with a diff of expected and actual outputs when they differ.
    Fail(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    pub name: String,
    pub outcome: Outcome,
}

/// The outcome of a test file.
#[derive(Debug, Clone)]
pub struct Report {
    pub file: PathBuf,
    pub component: PathBuf,
    pub cases: Vec<CaseReport>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.outcome == Outcome::Pass)
    }

    /// The names of the failed cases.
    pub fn failed(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .map(|c| c.name.as_str())
            .collect()
    }
}

impl fmt::Display for Report {
    /// `ok`/`FAILED` per case, the reasons indented under failures, and a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.file.display(), self.component.display())?;
        for case in &self.cases {
            match &case.outcome {
                Outcome::Pass => writeln!(f, "ok      {}", case.name)?,
                Outcome::Fail(why) => {
                    writeln!(f, "FAILED  {}", case.name)?;
                    for line in why.lines() {
                        writeln!(f, "        {line}")?;
                    }
                }
            }
        }
        let failed = self.failed().len();
        write!(
            f,
            "{} cases: {} passed, {failed} failed",
            self.cases.len(),
            self.cases.len() - failed
        )
    }
}

/// Runs a declarative test file; `components` is where named components are. An unreadable
/// file, bad tables or a missing component is an error; a case's own problems (an input that
/// does not read, an expectation that does not match) fail that case only.
pub fn run_file(path: &Path, components: &Path) -> anyhow::Result<Report> {
    let file = load(path)?;
    let component = resolve_component(path, &file.component, components)?;
    let mut tables = Tables::default();
    for (i, t) in file.tables.iter().enumerate() {
        tables
            .define(t)
            .map_err(|e| anyhow!("{}: tables[{i}]: {e}", path.display()))?;
    }
    let mut cases = Vec::with_capacity(file.cases.len());
    for (i, case) in file.cases.iter().enumerate() {
        let origin = format!("{}: cases[{i}] ({})", path.display(), case.name);
        let outcome = match run_case(&file, case, &component, &tables, origin) {
            Ok(()) => Outcome::Pass,
            Err(why) => Outcome::Fail(why),
        };
        cases.push(CaseReport {
            name: case.name.clone(),
            outcome,
        });
    }
    Ok(Report {
        file: path.to_path_buf(),
        component,
        cases,
    })
}

fn resolve_component(file: &Path, component: &str, components: &Path) -> anyhow::Result<PathBuf> {
    let path = if component.ends_with(".wasm") {
        file.parent().unwrap_or(Path::new(".")).join(component)
    } else {
        // Cargo names a crate's `.wasm` with underscores; scripts/build-plugins keeps dashes.
        let dashed = components.join(format!("{component}.wasm"));
        let underscored = components.join(format!("{}.wasm", component.replace('-', "_")));
        if !dashed.is_file() && underscored.is_file() {
            underscored
        } else {
            dashed
        }
    };
    if !path.is_file() {
        bail!(
            "{}: component `{component}`: no {} (build the plugins with scripts/build-plugins, \
             or pass the directory of built components)",
            file.display(),
            path.display()
        );
    }
    Ok(path)
}

fn run_case(
    file: &TestFile,
    case: &CaseDoc,
    component: &Path,
    tables: &Tables,
    origin: String,
) -> Result<(), String> {
    let expected = match (&case.output, &case.error) {
        (Some(_), Some(_)) => return Err("a case has `output` or `error`, not both".into()),
        (None, None) => return Err("a case needs `output` (possibly []) or `error`".into()),
        (Some(o), None) => Ok(o),
        (None, Some(e)) => Err(e),
    };
    let mut input = Vec::with_capacity(case.input.len());
    for (j, raw) in case.input.iter().enumerate() {
        let doc = event_object(raw).map_err(|e| format!("input[{j}]: {e}"))?;
        input.push(tables.event(&doc).map_err(|e| format!("input[{j}]: {e}"))?);
    }
    let config = case.config.as_ref().unwrap_or(&file.config);
    let spec = author_spec(&file.component, component, config.to_string(), origin);
    let result = PluginChain::new(vec![spec], TEST_PREFIX).and_then(|mut chain| chain.run(input));
    match (result, expected) {
        (Ok(actual), Ok(expected)) => compare(expected, &actual, tables),
        (Err(e), Err(wanted)) => {
            let e = format!("{e:#}");
            if e.contains(wanted.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "the error does not contain {wanted:?}; it is:\n  {e}"
                ))
            }
        }
        (Err(e), Ok(_)) => Err(format!("the plugin chain failed: {e:#}")),
        (Ok(actual), Err(wanted)) => {
            let mut why = format!("expected an error containing {wanted:?}; the output is:");
            for o in &actual {
                why.push_str("\n  ");
                why.push_str(&shown_line(&shown(o, None)));
            }
            Err(why)
        }
    }
}

/// An event object, bare or wrapped as `{event: {...}}`.
fn event_object(raw: &Json) -> Result<EventDoc, String> {
    let inner = match raw.as_object() {
        Some(o) if o.len() == 1 && o.contains_key("event") => &o["event"],
        _ => raw,
    };
    serde_json::from_value(inner.clone()).map_err(|e| e.to_string())
}

/// An expected output: an event object or a record object, bare or wrapped.
enum Expected {
    Event {
        doc: EventDoc,
        source_fields: Option<Vec<String>>,
    },
    Record(RecordDoc),
}

fn expected_object(raw: &Json) -> Result<Expected, String> {
    let obj = raw
        .as_object()
        .ok_or_else(|| format!("expected an event or a record object, not {raw}"))?;
    let (inner, is_record) = if obj.len() == 1 && obj.contains_key("record") {
        (&obj["record"], true)
    } else if obj.len() == 1 && obj.contains_key("event") {
        (&obj["event"], false)
    } else {
        (raw, !obj.contains_key("op"))
    };
    if is_record {
        return serde_json::from_value(inner.clone())
            .map(Expected::Record)
            .map_err(|e| format!("a record object (no `op`): {e}"));
    }
    let doc: EventDoc = serde_json::from_value(inner.clone()).map_err(|e| e.to_string())?;
    let source_fields = inner
        .get("source")
        .and_then(Json::as_object)
        .map(|s| s.keys().cloned().collect());
    Ok(Expected::Event { doc, source_fields })
}

/// An output as compared and shown: an events-file line, `source` projected.
#[derive(serde::Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Shown {
    Event(ShownEvent),
    Record(RecordDoc),
    /// An output that cannot be written as a line (non-UTF-8 bytes, a malformed row).
    Unwritable(String),
}

#[derive(serde::Serialize, PartialEq)]
struct ShownEvent {
    op: String,
    table: String,
    before: Option<Fields<Json>>,
    after: Option<Fields<Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Fields<Json>>,
    topic: Option<String>,
    headers: Fields<String>,
}

const SOURCE_FIELDS: [&str; 5] = ["lsn", "last_commit_lsn", "tx_id", "ts_us", "snapshot"];

fn shown_event(ev: &ChangeEvent, source_fields: Option<&[String]>) -> Shown {
    let doc = match event_doc(ev) {
        Ok(d) => d,
        Err(e) => return Shown::Unwritable(e),
    };
    let source = source_fields.map(|fields| {
        let full = serde_json::to_value(source_doc(&ev.source)).unwrap_or(Json::Null);
        Fields(
            SOURCE_FIELDS
                .iter()
                .filter(|f| fields.iter().any(|g| g == *f))
                .map(|f| (f.to_string(), full.get(*f).cloned().unwrap_or(Json::Null)))
                .collect(),
        )
    });
    Shown::Event(ShownEvent {
        op: doc.op,
        table: doc.table,
        before: doc.before,
        after: doc.after,
        source,
        topic: doc.topic,
        headers: doc.headers,
    })
}

fn shown(o: &Output, source_fields: Option<&[String]>) -> Shown {
    match o {
        Output::Change(ev) => shown_event(ev, source_fields),
        Output::Record(r) => record_doc(r).map_or_else(Shown::Unwritable, Shown::Record),
    }
}

fn shown_line(s: &Shown) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

/// Compares the actual outputs with the expected ones; the failure holds a line diff.
fn compare(expected: &[Json], actual: &[Output], tables: &Tables) -> Result<(), String> {
    let mut want = Vec::with_capacity(expected.len());
    let mut got = Vec::with_capacity(actual.len());
    let mut problems = Vec::new();
    for (i, raw) in expected.iter().enumerate() {
        let at = actual.get(i);
        match expected_object(raw) {
            Err(e) => problems.push(format!("output[{i}]: {e}")),
            Ok(Expected::Record(r)) => {
                want.push(shown_line(&Shown::Record(r)));
            }
            Ok(Expected::Event { doc, source_fields }) => {
                let table = match at {
                    Some(Output::Change(ev)) if ev.table.qualified_name() == doc.table => {
                        Some(ev.table.clone())
                    }
                    _ => tables.get(&doc.table).cloned(),
                };
                let Some(table) = table else {
                    problems.push(format!(
                        "output[{i}]: table `{}` is neither a table of the file nor the table of \
                         the actual output at this position",
                        doc.table
                    ));
                    continue;
                };
                match event_from_doc(&doc, table) {
                    Ok(ev) => want.push(shown_line(&shown_event(&ev, source_fields.as_deref()))),
                    Err(e) => problems.push(format!("output[{i}]: {e}")),
                }
            }
        }
    }
    for (i, o) in actual.iter().enumerate() {
        let fields = match expected.get(i).map(expected_object) {
            Some(Ok(Expected::Event {
                source_fields: Some(f),
                ..
            })) => Some(f),
            _ => None,
        };
        got.push(shown_line(&shown(o, fields.as_deref())));
    }
    if problems.is_empty() && want == got {
        return Ok(());
    }
    let mut why = String::new();
    for p in &problems {
        why.push_str(p);
        why.push('\n');
    }
    if problems.is_empty() {
        why.push_str(&format!(
            "the output differs ({} expected, {} actual; - expected, + actual):\n",
            want.len(),
            got.len()
        ));
        why.push_str(&line_diff(&want, &got));
    } else {
        why.push_str("the actual output is:\n");
        for g in &got {
            why.push_str("  ");
            why.push_str(g);
            why.push('\n');
        }
    }
    Err(why.trim_end().to_string())
}

/// A line diff (longest common subsequence): `  ` for lines in both, `- ` for expected only,
/// `+ ` for actual only.
pub fn line_diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: the longest common subsequence of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push_str(&format!("  {}\n", expected[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            if i < n && lcs[i][j + 1] == lcs[i + 1][j] {
                out.push_str(&format!("- {}\n", expected[i]));
                i += 1;
            } else {
                out.push_str(&format!("+ {}\n", actual[j]));
                j += 1;
            }
        } else {
            out.push_str(&format!("- {}\n", expected[i]));
            i += 1;
        }
    }
    out
}

/// Reads the tables and events of test YAML, for tools that share the format. Exposed for
/// [`crate::events_file`] users that hold YAML rather than JSON Lines.
pub fn events_from_yaml(tables: &[TableDoc], events: &[Json]) -> Result<Vec<ChangeEvent>, String> {
    let mut t = Tables::default();
    for (i, doc) in tables.iter().enumerate() {
        t.define(doc).map_err(|e| format!("tables[{i}]: {e}"))?;
    }
    events
        .iter()
        .enumerate()
        .map(|(j, raw)| {
            let doc = event_object(raw).map_err(|e| format!("[{j}]: {e}"))?;
            t.event(&doc).map_err(|e| format!("[{j}]: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Header, Lsn, Record, Value};

    fn tables() -> Tables {
        let doc: TableDoc = serde_yaml_ng::from_str(
            "{schema: public, name: customers, columns: [{name: id, type: int4, key: true}, {name: email, type: text}, {name: at, type: timestamptz}]}",
        )
        .unwrap();
        let mut t = Tables::default();
        t.define(&doc).unwrap();
        t
    }

    fn yaml(text: &str) -> Vec<Json> {
        serde_yaml_ng::from_str(text).unwrap()
    }

    fn actual_event(t: &Tables, yaml_event: &str) -> Output {
        let doc: EventDoc = serde_yaml_ng::from_str(yaml_event).unwrap();
        Output::Change(t.event(&doc).unwrap())
    }

    #[test]
    fn equal_outputs_pass_and_values_are_normalized() {
        let t = tables();
        let actual = vec![actual_event(
            &t,
            "{op: c, table: public.customers, after: {id: 1, email: '****', at: '2016-11-04 11:51:30+00'}, source: {lsn: 0/10, tx_id: 5}}",
        )];
        let expected = yaml(
            "[{op: c, table: public.customers, after: {id: 1, email: '****', at: '2016-11-04 13:51:30+02'}}]",
        );
        assert_eq!(compare(&expected, &actual, &t), Ok(()));
        // The source is compared when given, on the fields given.
        let expected = yaml(
            "[{op: c, table: public.customers, after: {id: 1, email: '****', at: '2016-11-04 11:51:30+00'}, source: {lsn: 0/10}}]",
        );
        assert_eq!(compare(&expected, &actual, &t), Ok(()));
        let expected = yaml(
            "[{op: c, table: public.customers, after: {id: 1, email: '****', at: '2016-11-04 11:51:30+00'}, source: {lsn: 0/11}}]",
        );
        let why = compare(&expected, &actual, &t).unwrap_err();
        assert!(why.contains(r#"- {"event":{"op":"c","table":"public.customers","before":null,"after":{"id":1,"email":"****","at":"2016-11-04 11:51:30+00"},"source":{"lsn":"0/11"},"topic":null,"headers":{}}}"#), "{why}");
        assert!(why.contains(r#"+ {"event":{"op":"c","table":"public.customers","before":null,"after":{"id":1,"email":"****","at":"2016-11-04 11:51:30+00"},"source":{"lsn":"0/10"},"topic":null,"headers":{}}}"#), "{why}");
    }

    #[test]
    fn differences_show_as_a_line_diff() {
        let t = tables();
        let actual = vec![
            actual_event(
                &t,
                "{op: c, table: public.customers, after: {id: 1, email: a}}",
            ),
            Output::Record(Record {
                topic: "orders".into(),
                key: Some(b"1".to_vec()),
                value: None,
                headers: vec![Header {
                    key: "h".into(),
                    value: b"v".to_vec(),
                }],
            }),
        ];
        let expected = yaml(
            "[{op: c, table: public.customers, after: {id: 1, email: b}}, {record: {topic: orders, key: '1', value: null, headers: {h: v}}}]",
        );
        let why = compare(&expected, &actual, &t).unwrap_err();
        assert_eq!(
            why,
            "the output differs (2 expected, 2 actual; - expected, + actual):\n\
             - {\"event\":{\"op\":\"c\",\"table\":\"public.customers\",\"before\":null,\"after\":{\"id\":1,\"email\":\"b\",\"at\":null},\"topic\":null,\"headers\":{}}}\n\
             + {\"event\":{\"op\":\"c\",\"table\":\"public.customers\",\"before\":null,\"after\":{\"id\":1,\"email\":\"a\",\"at\":null},\"topic\":null,\"headers\":{}}}\n\
             \x20\x20{\"record\":{\"topic\":\"orders\",\"key\":\"1\",\"value\":null,\"headers\":{\"h\":\"v\"}}}"
        );
        // A missing output.
        let why = compare(&expected[..1], &[], &t).unwrap_err();
        assert!(why.contains("(1 expected, 0 actual"), "{why}");
        assert!(why.contains("\n- {\"event\""), "{why}");
    }

    #[test]
    fn reshaped_tables_are_compared_by_their_output_names() {
        let t = tables();
        let reshaped: TableDoc = serde_yaml_ng::from_str(
            "{schema: public, name: customers, columns: [{name: id, type: text, key: true}, {name: mail, type: text}]}",
        )
        .unwrap();
        let mut out_tables = Tables::default();
        out_tables.define(&reshaped).unwrap();
        let actual = vec![actual_event(
            &out_tables,
            "{op: c, table: public.customers, after: {id: 'x', mail: m}}",
        )];
        let expected = yaml("[{op: c, table: public.customers, after: {id: 'x', mail: m}}]");
        assert_eq!(compare(&expected, &actual, &t), Ok(()));
        let expected = yaml("[{op: c, table: public.customers, after: {id: 'x', email: m}}]");
        let why = compare(&expected, &actual, &t).unwrap_err();
        assert!(
            why.starts_with("output[0]: after.email: public.customers has no column `email`"),
            "{why}"
        );
    }

    #[test]
    fn line_diff_aligns_common_lines() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            line_diff(&s(&["a", "b", "c"]), &s(&["a", "x", "c", "d"])),
            "  a\n- b\n+ x\n  c\n+ d\n"
        );
        assert_eq!(line_diff(&s(&[]), &s(&["a"])), "+ a\n");
        assert_eq!(line_diff(&s(&["a"]), &s(&[])), "- a\n");
    }

    #[test]
    fn test_files_parse_with_case_configs() {
        let f: TestFile = serde_yaml_ng::from_str(
            "component: mask\nconfig: {columns: [a]}\ntables: []\ncases:\n  - {name: one, input: [], output: []}\n  - {name: two, config: null, error: boom}\n",
        )
        .unwrap();
        assert_eq!(f.cases[0].config, None);
        assert_eq!(f.cases[1].config, Some(Json::Null));
        assert_eq!(f.cases[1].error.as_deref(), Some("boom"));
        let bad =
            serde_yaml_ng::from_str::<TestFile>("component: x\ncases: [{name: a, outptu: []}]\n");
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown field `outptu`"));
    }

    #[test]
    fn yaml_events_read_like_events_files() {
        let tables: Vec<TableDoc> = serde_yaml_ng::from_str(
            "[{schema: s, name: t, columns: [{name: a, type: int8}, {name: f, type: float8}, {name: b, type: bytea}]}]",
        )
        .unwrap();
        let evs = events_from_yaml(
            &tables,
            &yaml("[{op: c, table: s.t, after: {a: 5, f: NaN, b: '\\x0a'}, source: {lsn: 1/2, snapshot: true}}, {event: {op: d, table: s.t, before: {a: 5, f: 1.5}}}]"),
        )
        .unwrap();
        assert_eq!(evs[0].after.as_ref().unwrap()[0], Value::Int64(5));
        assert!(matches!(evs[0].after.as_ref().unwrap()[1], Value::Float64(f) if f.is_nan()));
        assert_eq!(evs[0].after.as_ref().unwrap()[2], Value::Bytes(vec![10]));
        assert_eq!(evs[0].source.lsn, Lsn((1 << 32) | 2));
        assert_eq!(evs[1].before.as_ref().unwrap()[1], Value::Float64(1.5));
        let e =
            events_from_yaml(&tables, &yaml("[{op: c, table: s.t, after: {a: x}}]")).unwrap_err();
        assert_eq!(e, "[0]: after.a: expected an integer for int8, not \"x\"");
    }
}
