//! Renames columns, tables and topics. See README.md for the configuration.
//!
//! Columns and topics go through the SDK's [`Plugin`] API. The SDK has no way to rename an
//! event's *table*, so the component's exports are written out here (instead of
//! `export_plugin!`): they run the SDK's runtime and then rename the table descriptors of the
//! output ([`TableRenamer`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use walrelay_plugin_sdk::__private::{self as sdk, BatchOutput, ChangeEvent, PluginInfo, Runtime};
use walrelay_plugin_sdk::prelude::*;
use walrelay_plugin_sdk::serde_json::Value as Json;
use walrelay_plugin_sdk::testing::Output as WireOutput;

/// A column rule: `[schema, table, column]` globs and the new name.
#[derive(Debug)]
struct ColumnRule {
    key: String,
    parts: [String; 3],
    to: String,
}

/// A topic rule: the regex, anchored at both ends, and the replacement.
#[derive(Debug)]
struct TopicRule {
    regex: Regex,
    replacement: String,
}

/// The column renames of one input descriptor: `Ok` (old, new) pairs, or why they clash.
type Plan = Result<Vec<(String, String)>, String>;

struct Rename {
    /// Most specific first.
    columns: Vec<ColumnRule>,
    /// `schema.table` -> (new schema, new name).
    tables: BTreeMap<String, (String, String)>,
    topics: Vec<TopicRule>,
    /// Input descriptor id -> its column renames.
    plans: BTreeMap<u32, Plan>,
}

impl Plugin for Rename {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["columns", "tables", "topics"])?;
        let mut columns = Vec::new();
        for (key, to) in string_map(&config, "columns")? {
            let parts: Vec<&str> = key.split('.').collect();
            if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "`columns`: `{key}` is not a column pattern ([[schema.]table.]column)"
                ));
            }
            if to.is_empty() {
                return Err(format!("`columns`: `{key}` is renamed to an empty name"));
            }
            let mut padded = ["*", "*", "*"].map(String::from);
            for (slot, part) in padded[3 - parts.len()..].iter_mut().zip(&parts) {
                *slot = part.to_string();
            }
            columns.push(ColumnRule {
                key: key.to_string(),
                parts: padded,
                to: to.to_string(),
            });
        }
        // The most specific pattern first (the most characters other than `*`), then by text:
        // configuration maps have no order of their own.
        columns.sort_by(|a, b| {
            specificity(b)
                .cmp(&specificity(a))
                .then_with(|| a.key.cmp(&b.key))
        });
        let tables = table_renames(&config)?;
        let topics = topic_rules(&config)?;
        Ok(Rename {
            columns,
            tables,
            topics,
            plans: BTreeMap::new(),
        })
    }

    /// Renames touch descriptors and topics, never values: none are sent to the plugin.
    fn interest(&self) -> Interest {
        Interest::all().only_columns(Vec::<String>::new())
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let id = event.table().id;
        if !self.plans.contains_key(&id) {
            let plan = self.plan(event.table());
            self.plans.insert(id, plan);
        }
        let renames = self.plans[&id].as_ref().map_err(Clone::clone)?;
        match renames.as_slice() {
            [] => {}
            [(old, new)] => {
                event.rename(old, new);
            }
            _ => {
                // Through names no PostgreSQL column can have (NUL), so that swaps and chains
                // (a -> b, b -> a) work.
                for (i, (old, _)) in renames.iter().enumerate() {
                    event.rename(old, &format!("\0{i}"));
                }
                for (i, (_, new)) in renames.iter().enumerate() {
                    event.rename(&format!("\0{i}"), new);
                }
            }
        }
        let renamed = if self.tables.is_empty() {
            None
        } else {
            self.tables.get(&event.table().qualified_name())
        };
        if let Some((schema, name)) = renamed {
            // The default topic follows the table.
            let old = format!("{}.{}", event.schema(), event.table_name());
            let topic = event.topic();
            let prefix = if topic == old {
                Some("")
            } else {
                topic.strip_suffix(&old).filter(|p| p.ends_with('.'))
            };
            if let Some(prefix) = prefix {
                let topic = format!("{prefix}{schema}.{name}");
                event.set_topic(topic);
            }
        }
        for (i, rule) in self.topics.iter().enumerate() {
            if let Some(caps) = rule.regex.captures(event.topic()) {
                let mut topic = String::new();
                caps.expand(&rule.replacement, &mut topic);
                if topic.is_empty() {
                    return Err(format!(
                        "topics[{i}] turned topic `{}` into an empty one",
                        event.topic()
                    ));
                }
                event.set_topic(topic);
                break;
            }
        }
        Ok(Emit::Keep(event))
    }
}

impl Rename {
    fn plan(&self, table: &Table) -> Plan {
        let mut renames = Vec::new();
        let mut finals: BTreeMap<&str, &str> = BTreeMap::new();
        for column in &table.columns {
            let name = [table.schema.as_str(), table.name.as_str(), &column.name];
            let rule = self
                .columns
                .iter()
                .find(|r| r.parts.iter().zip(name).all(|(p, n)| glob(p, n)));
            let new = rule.map_or(column.name.as_str(), |r| r.to.as_str());
            if let Some(other) = finals.insert(new, &column.name) {
                return Err(format!(
                    "renaming the columns of {} would name both `{other}` and `{}` `{new}`",
                    table.qualified_name(),
                    column.name
                ));
            }
            if new != column.name {
                renames.push((column.name.clone(), new.to_string()));
            }
        }
        Ok(renames)
    }
}

fn specificity(rule: &ColumnRule) -> usize {
    rule.parts
        .iter()
        .map(|p| p.chars().filter(|&c| c != '*').count())
        .sum()
}

/// A `key: {string: string}` map of the configuration (empty when absent).
fn string_map<'a>(config: &'a Config, key: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let Some(value) = config.get(key)? else {
        return Ok(Vec::new());
    };
    let Json::Object(map) = value else {
        return Err(format!("`{key}` must be a map of names to new names"));
    };
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.as_str(), s)),
            None => Err(format!("`{key}`: the new name of `{k}` must be a string")),
        })
        .collect()
}

fn table_renames(config: &Config) -> Result<BTreeMap<String, (String, String)>, String> {
    let mut tables = BTreeMap::new();
    for (from, to) in string_map(config, "tables")? {
        if !matches!(from.split_once('.'), Some((s, n)) if !s.is_empty() && !n.is_empty()) {
            return Err(format!("`tables`: `{from}` is not a schema.table name"));
        }
        let (schema, name) = match to.split_once('.') {
            Some((s, n)) => (s, n),
            // No schema: the table keeps its own.
            None => (from.split_once('.').map_or("", |(s, _)| s), to),
        };
        if schema.is_empty() || name.is_empty() {
            return Err(format!(
                "`tables`: `{from}` is renamed to `{to}`, which is not a [schema.]table name"
            ));
        }
        tables.insert(from.to_string(), (schema.to_string(), name.to_string()));
    }
    Ok(tables)
}

fn topic_rules(config: &Config) -> Result<Vec<TopicRule>, String> {
    let Some(value) = config.get("topics")? else {
        return Ok(Vec::new());
    };
    let Json::Array(list) = value else {
        return Err("`topics` must be a list of {regex, replacement} rules".into());
    };
    list.iter()
        .enumerate()
        .map(|(i, rule)| {
            let rule = Config::from_value(rule.clone());
            let at = |e: String| format!("topics[{i}]: {e}");
            rule.deny_unknown(&["regex", "replacement"]).map_err(at)?;
            let source = rule.require_str("regex").map_err(at)?;
            let replacement = rule.require_str("replacement").map_err(at)?;
            let regex = Regex::new(&format!(r"\A(?:{source})\z"))
                .map_err(|e| at(format!("bad regex `{source}`: {e}")))?;
            check_replacement(&regex, replacement).map_err(at)?;
            Ok(TopicRule {
                regex,
                replacement: replacement.to_string(),
            })
        })
        .collect()
}

/// Refuses a replacement that refers to a group the regex does not have (the regex crate would
/// put nothing there). `$name` takes the longest run of letters, digits and `_`.
fn check_replacement(regex: &Regex, replacement: &str) -> Result<(), String> {
    let mut rest = replacement;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            rest = r;
            continue;
        }
        let (group, written) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = r.find('}') else {
                return Err(format!("unclosed `${{` in replacement `{replacement}`"));
            };
            rest = &r[end + 1..];
            (&r[..end], format!("${{{}}}", &r[..end]))
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let group = &rest[..end];
            rest = &rest[end..];
            if group.is_empty() {
                return Err(format!(
                    "a `$` in replacement `{replacement}` names no group (write `$$` for a \
                     dollar sign)"
                ));
            }
            (group, format!("${group}"))
        };
        let exists = match group.parse::<usize>() {
            Ok(n) => n < regex.captures_len(),
            Err(_) => regex.capture_names().flatten().any(|n| n == group),
        };
        if !exists {
            let digits = group.len() - group.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let hint = if digits > 0 && digits < group.len() {
                format!(
                    " (for group {} followed by text write `${{{}}}`)",
                    &group[..digits],
                    &group[..digits]
                )
            } else {
                String::new()
            };
            return Err(format!(
                "replacement `{replacement}` refers to {written}, which the regex does not \
                 have{hint}"
            ));
        }
    }
    Ok(())
}

/// Renames the table descriptors of the output, per `tables:`.
///
/// Descriptors the SDK derived (for events whose columns were renamed) are renamed in place.
/// Events that still name an input descriptor of a renamed table get a renamed copy of it,
/// declared once under the input's own id ("an id equal to an input descriptor's replaces it
/// from now on", says the interface).
#[derive(Default)]
struct TableRenamer {
    renames: BTreeMap<String, (String, String)>,
    /// Input descriptors of renamed tables, by id.
    inputs: BTreeMap<u32, Table>,
    /// Input ids whose renamed copy has been declared.
    declared: BTreeSet<u32>,
}

impl TableRenamer {
    fn new(config: &Config) -> Result<Self, String> {
        Ok(TableRenamer {
            renames: table_renames(config)?,
            ..TableRenamer::default()
        })
    }

    /// Notes a batch's new input descriptors (before the plugin runs).
    fn inputs(&mut self, tables: &[Table]) {
        if self.renames.is_empty() {
            return;
        }
        for table in tables {
            self.declared.remove(&table.id);
            if self.renames.contains_key(&table.qualified_name()) {
                self.inputs.insert(table.id, table.clone());
            } else {
                self.inputs.remove(&table.id);
            }
        }
    }

    /// Renames the output's descriptors. `inputs` are the descriptor ids of the batch's input
    /// events, for the outputs that name an input (`keep`, `patch`).
    fn output(&mut self, tables: &mut Vec<Table>, events: &[WireOutput], inputs: &[u32]) {
        if self.renames.is_empty() {
            return;
        }
        let derived: BTreeSet<u32> = tables.iter().map(|t| t.id).collect();
        for table in tables.iter_mut() {
            if let Some((schema, name)) = self.renames.get(&table.qualified_name()) {
                table.schema.clone_from(schema);
                table.name.clone_from(name);
            }
        }
        for event in events {
            let id = match event {
                WireOutput::Change(event) => event.table,
                WireOutput::Patch(patch) => patch.table,
                WireOutput::Keep(at) => match inputs.get(*at as usize) {
                    Some(id) => *id,
                    None => continue,
                },
                WireOutput::Plain(_) => continue,
            };
            if derived.contains(&id) {
                continue;
            }
            if let Some(input) = self.inputs.get(&id) {
                if self.declared.insert(id) {
                    let (schema, name) = &self.renames[&input.qualified_name()];
                    let mut renamed = input.clone();
                    renamed.schema.clone_from(schema);
                    renamed.name.clone_from(name);
                    tables.push(renamed);
                }
            }
        }
    }
}

/// The component's state: the SDK's runtime and the table renamer.
#[derive(Default)]
struct State {
    runtime: Option<Runtime<Rename>>,
    tables: TableRenamer,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct Component;

impl sdk::Guest for Component {
    fn init(config: String) -> Result<PluginInfo, String> {
        STATE.with(|state| {
            let state = &mut *state.borrow_mut();
            state.tables = TableRenamer::default();
            let info = sdk::init::<Rename>(
                &mut state.runtime,
                &config,
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            )?;
            state.tables = TableRenamer::new(&Config::parse(&config)?)?;
            Ok(info)
        })
    }

    fn transform(tables: Vec<Table>, events: Vec<ChangeEvent>) -> Result<BatchOutput, String> {
        STATE.with(|state| {
            let state = &mut *state.borrow_mut();
            state.tables.inputs(&tables);
            let inputs: Vec<u32> = events.iter().map(|e| e.table).collect();
            let mut out = sdk::transform::<Rename>(&mut state.runtime, tables, events)?;
            state.tables.output(&mut out.tables, &out.events, &inputs);
            Ok(out)
        })
    }
}

walrelay_plugin_sdk::bindings::__export_walrelay_plugin!(
    Component with_types_in walrelay_plugin_sdk::bindings
);

#[cfg(test)]
mod tests;
