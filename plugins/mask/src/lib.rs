//! Masks the values of chosen columns: redacts, partially redacts, hashes or nulls them, in
//! the old row, the new row and (when allowed) the key. See README.md for the configuration.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};
use walrelay_plugin_sdk::oid;
use walrelay_plugin_sdk::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// A fixed text in place of the value.
    Redact(String),
    /// Keeps the last `keep_last` characters, one `*` for each other character.
    Partial { keep_last: usize },
    /// Hex SHA-256 of `salt` followed by the value's text.
    Hash { salt: String },
    /// SQL `NULL`.
    Null,
}

#[derive(Debug)]
struct Rule {
    /// Patterns, each split into its dotted parts.
    patterns: Vec<Vec<String>>,
    mode: Mode,
    /// Whether the rule may mask key columns (which changes the Kafka key).
    include_keys: bool,
}

/// What happens to a masked column's descriptor.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Retype {
    /// Nothing: a text column keeps its type, a nullable column stays nullable.
    Keep,
    /// Its values are text now.
    Text,
    /// It may hold null now.
    Nullable,
}

/// How one table is masked: `(column, rule index, retype)`, or why it cannot be.
type Plan = Result<Vec<(String, usize, Retype)>, String>;

struct Mask {
    rules: Vec<Rule>,
    /// Input table id -> its plan.
    plans: BTreeMap<u32, Plan>,
}

/// The keys of one rule (and of the simple form, which is one rule at the top level).
const RULE_KEYS: &[&str] = &[
    "columns",
    "mode",
    "text",
    "salt",
    "keep_last",
    "include_keys",
];

impl Plugin for Mask {
    fn new(config: Config) -> Result<Self, String> {
        let rules = match config.get("rules")? {
            None => {
                config.deny_unknown(RULE_KEYS)?;
                vec![parse_rule(&config, false)?]
            }
            Some(rules) => {
                config.deny_unknown(&["rules", "include_keys"])?;
                let include_keys = config.get_bool("include_keys")?.unwrap_or(false);
                let list = rules
                    .as_array()
                    .filter(|l| !l.is_empty())
                    .ok_or("configuration key `rules` must be a non-empty list of rules")?;
                list.iter()
                    .enumerate()
                    .map(|(i, rule)| {
                        if !rule.is_object() {
                            return Err(format!("rules[{i}] must be an object"));
                        }
                        let rule = Config::from_value(rule.clone());
                        rule.deny_unknown(RULE_KEYS)
                            .and_then(|()| parse_rule(&rule, include_keys))
                            .map_err(|e| format!("rules[{i}]: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Mask {
            rules,
            plans: BTreeMap::new(),
        })
    }

    /// Only the values of the columns the patterns can name are sent to the plugin.
    fn interest(&self) -> Interest {
        let mut columns: Vec<String> = self
            .rules
            .iter()
            .flat_map(|r| r.patterns.iter().filter_map(|p| p.last().cloned()))
            .collect();
        columns.sort_unstable();
        columns.dedup();
        Interest::all().only_columns(columns)
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let id = event.table().id;
        if !self.plans.contains_key(&id) {
            let plan = self.plan(event.table());
            self.plans.insert(id, plan);
        }
        let plan = self.plans[&id].as_ref().map_err(Clone::clone)?;
        for (column, rule, retype) in plan {
            let mode = &self.rules[*rule].mode;
            for row in [Row::Before, Row::After] {
                if let Some(value) = event.get_mut(row, column) {
                    mask(mode, value);
                }
            }
            // A column left as it is keeps the event on its input descriptor (no shape of its
            // own to derive and compare, per event).
            if matches!(retype, Retype::Keep) {
                continue;
            }
            if let Some(c) = event.column_mut(column) {
                match retype {
                    Retype::Keep => {}
                    Retype::Text => c.set_text_type(),
                    Retype::Nullable => c.nullable = true,
                }
            }
        }
        Ok(Emit::Keep(event))
    }
}

fn parse_rule(config: &Config, include_keys_default: bool) -> Result<Rule, String> {
    let patterns = config
        .require_strs("columns")?
        .into_iter()
        .map(|p| {
            let parts: Vec<String> = p.split('.').map(str::to_string).collect();
            if parts.len() > 3 || parts.iter().any(String::is_empty) {
                Err(format!(
                    "`{p}` is not a column pattern ([schema.][table.]column)"
                ))
            } else {
                Ok(parts)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if patterns.is_empty() {
        return Err("configuration key `columns` must list at least one pattern".into());
    }
    let mode_name = config.get_str("mode")?.unwrap_or("redact");
    let text = config.get_str("text")?;
    let salt = config.get_str("salt")?;
    let keep_last = config.get_u64("keep_last")?;
    let only = |key: &str, present: bool, mode: &str| -> Result<(), String> {
        if present && mode_name != mode {
            Err(format!("`{key}` only goes with mode `{mode}`"))
        } else {
            Ok(())
        }
    };
    only("text", text.is_some(), "redact")?;
    only("salt", salt.is_some(), "hash")?;
    only("keep_last", keep_last.is_some(), "partial")?;
    let mode = match mode_name {
        "redact" => Mode::Redact(text.unwrap_or("****").to_string()),
        "partial" => Mode::Partial {
            keep_last: usize::try_from(keep_last.unwrap_or(4))
                .map_err(|_| "`keep_last` is too large".to_string())?,
        },
        "hash" => Mode::Hash {
            salt: salt.unwrap_or("").to_string(),
        },
        "null" => Mode::Null,
        other => {
            return Err(format!(
                "unknown mode `{other}` (expected redact, partial, hash or null)"
            ))
        }
    };
    Ok(Rule {
        patterns,
        mode,
        include_keys: config
            .get_bool("include_keys")?
            .unwrap_or(include_keys_default),
    })
}

impl Mask {
    /// Each column of `table` that some rule masks, with the first such rule. A rule without
    /// `include_keys` does not see key columns.
    fn plan(&self, table: &Table) -> Plan {
        let mut plan = Vec::new();
        for c in &table.columns {
            let name = [table.schema.as_str(), &table.name, &c.name];
            let Some(index) = self.rules.iter().position(|rule| {
                (rule.include_keys || !c.is_key)
                    && rule
                        .patterns
                        .iter()
                        .any(|p| name[3 - p.len()..].iter().zip(p).all(|(n, p)| glob(p, n)))
            }) else {
                continue;
            };
            let retype = match self.rules[index].mode {
                Mode::Null if c.is_key => {
                    return Err(format!(
                        "mask: mode `null` cannot mask key column {}.{}.{} (a key holds no \
                         null); use redact, partial or hash for key columns",
                        table.schema, table.name, c.name
                    ))
                }
                Mode::Null if c.nullable => Retype::Keep,
                Mode::Null => Retype::Nullable,
                _ => {
                    let text = [oid::TEXT, oid::VARCHAR, oid::BPCHAR];
                    if text.contains(&c.type_oid) || text.contains(&c.base_type_oid) {
                        Retype::Keep
                    } else {
                        Retype::Text
                    }
                }
            };
            plan.push((c.name.clone(), index, retype));
        }
        Ok(plan)
    }
}

fn mask(mode: &Mode, value: &mut Value) {
    let Some(text) = value.to_text() else {
        return; // null or unchanged TOAST
    };
    *value = match mode {
        Mode::Redact(redaction) => Value::Text(redaction.clone()),
        Mode::Partial { keep_last } => Value::Text(partial(&text, *keep_last)),
        Mode::Hash { salt } => {
            let mut hasher = Sha256::new();
            hasher.update(salt.as_bytes());
            hasher.update(text.as_bytes());
            let mut hex = String::with_capacity(64);
            for byte in hasher.finalize().iter() {
                let _ = write!(hex, "{byte:02x}");
            }
            Value::Text(hex)
        }
        Mode::Null => Value::Null,
    };
}

/// `*` for each character but the last `keep`; all `*` when the text has no more than `keep`
/// characters (a short value is not shown whole).
fn partial(text: &str, keep: usize) -> String {
    let n = text.chars().count();
    if n <= keep {
        return "*".repeat(n);
    }
    let mut out = "*".repeat(n - keep);
    out.extend(text.chars().skip(n - keep));
    out
}

walrelay_plugin_sdk::export_plugin!(Mask);

#[cfg(test)]
mod tests {
    use super::*;
    use walrelay_plugin_sdk::testing::{self, change, Harness};

    #[test]
    fn globs() {
        assert!(glob("email", "email"));
        assert!(!glob("email", "emails"));
        assert!(glob("*", ""));
        assert!(glob("*mail", "email"));
        assert!(glob("e*l", "email"));
        assert!(glob("*ma*", "email"));
        assert!(!glob("e*x", "email"));
        assert!(!glob("ab*ba", "aba"));
    }

    fn tables() -> Vec<Table> {
        vec![
            testing::table(
                1,
                "public",
                "products",
                &[("id", "int4"), ("name", "varchar"), ("email", "text")],
            ),
            testing::table(2, "shop", "users", &[("id", "int4"), ("email", "int8")]),
        ]
    }

    #[test]
    fn redacts_matching_columns_in_both_rows() {
        let config = r#"{"columns": ["public.products.name", "*.email"], "text": "xx"}"#;
        let mut h = Harness::<Mask>::new(config).unwrap();
        let (new_tables, out) = h
            .run(
                tables(),
                vec![
                    testing::update(
                        1,
                        Some(vec![Value::Int32(1), "a".into(), Value::Null]),
                        vec![Value::Int32(1), "b".into(), Value::UnchangedToast],
                    ),
                    testing::insert(2, vec![Value::Int32(2), Value::Int64(5)]),
                ],
            )
            .unwrap();
        let first = change(&out[0]).unwrap();
        assert_eq!(first.table, 1, "text columns keep their descriptor");
        assert_eq!(
            first.before,
            Some(vec![Value::Int32(1), "xx".into(), Value::Null])
        );
        assert_eq!(
            first.after,
            Some(vec![Value::Int32(1), "xx".into(), Value::UnchangedToast])
        );
        // shop.users.email is an int8: it becomes a text column.
        assert_eq!(new_tables.len(), 1);
        assert_eq!(new_tables[0].columns[1].type_name, "text");
        let second = change(&out[1]).unwrap();
        assert_eq!(second.table, new_tables[0].id);
        assert_eq!(second.after, Some(vec![Value::Int32(2), "xx".into()]));
        h.check(&out).unwrap();
    }

    #[test]
    fn hashes() {
        let config = r#"{"columns": ["products.name"], "mode": "hash"}"#;
        let mut h = Harness::<Mask>::new(config).unwrap();
        let (_, out) = h
            .run(
                tables(),
                vec![testing::insert(
                    1,
                    vec![Value::Int32(1), "abc".into(), "e".into()],
                )],
            )
            .unwrap();
        let after = change(&out[0]).unwrap().after.clone().unwrap();
        assert_eq!(
            after[1],
            Value::Text("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into())
        );
        assert_eq!(after[2], "e".into());
    }

    #[test]
    fn bad_configs_are_refused() {
        for config in [
            "null",
            r#"{"columns": "x"}"#,
            r#"{"columns": ["a.b.c.d"]}"#,
            r#"{"columns": ["x"], "mode": "shred"}"#,
            r#"{"columns": ["x"], "mode": "hash", "text": "t"}"#,
            r#"{"columns": ["x"], "colums": []}"#,
            r#"{"columns": []}"#,
            r#"{"columns": ["x"], "mode": "partial", "salt": "s"}"#,
            r#"{"columns": ["x"], "keep_last": 2}"#,
            r#"{"columns": ["x"], "mode": "partial", "keep_last": -1}"#,
            r#"{"rules": []}"#,
            r#"{"rules": [{"columns": ["x"]}], "columns": ["y"]}"#,
            r#"{"rules": [{"columns": ["x"], "mode": "hash", "text": "t"}]}"#,
            r#"{"rules": ["x"]}"#,
            r#"{"columns": ["x"], "include_keys": "yes"}"#,
        ] {
            assert!(Harness::<Mask>::new(config).is_err(), "{config}");
        }
    }

    #[test]
    fn partial_is_unicode_aware() {
        assert_eq!(partial("4111111111111111", 4), "************1111");
        assert_eq!(partial("Zoë Straße", 3), "*******aße");
        assert_eq!(partial("日本語テキスト", 2), "*****スト");
        assert_eq!(partial("abc", 4), "***");
        assert_eq!(partial("", 4), "");
        assert_eq!(partial("abcd", 0), "****");
    }

    fn customers() -> Table {
        let mut t = testing::table(
            7,
            "public",
            "customers",
            &[
                ("email", "text"),
                ("card", "text"),
                ("phone", "varchar"),
                ("age", "int4"),
            ],
        );
        t.columns[3].nullable = false;
        t
    }

    #[test]
    fn rules_with_different_modes() {
        let config = r#"{"rules": [
            {"columns": ["*.card"], "mode": "partial", "keep_last": 4},
            {"columns": ["customers.*"], "mode": "hash", "salt": "pepper"},
            {"columns": ["age"], "mode": "null"}
        ]}"#;
        let mut h = Harness::<Mask>::new(config).unwrap();
        let (tables, out) = h
            .run(
                vec![customers()],
                vec![testing::insert(
                    7,
                    vec![
                        "ada@example.com".into(),
                        "4111111111111111".into(),
                        Value::Null,
                        Value::Int32(36),
                    ],
                )],
            )
            .unwrap();
        h.check(&out).unwrap();
        let ev = change(&out[0]).unwrap();
        let after = ev.after.clone().unwrap();
        // The key column (email) is left alone: no rule has include_keys.
        assert_eq!(after[0], "ada@example.com".into());
        assert_eq!(after[1], "************1111".into());
        assert_eq!(after[2], Value::Null);
        // age matches the hash rule (customers.*) first: rules apply in order.
        let mut hasher = Sha256::new();
        hasher.update(b"pepper36");
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(after[3], Value::Text(hex));
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].columns[3].type_name, "text");
    }

    #[test]
    fn null_mode_makes_the_column_nullable() {
        let config = r#"{"columns": ["age"], "mode": "null"}"#;
        let mut h = Harness::<Mask>::new(config).unwrap();
        let (tables, out) = h
            .run(
                vec![customers()],
                vec![testing::insert(
                    7,
                    vec!["a".into(), "b".into(), "c".into(), Value::Int32(36)],
                )],
            )
            .unwrap();
        h.check(&out).unwrap();
        assert_eq!(tables.len(), 1);
        assert!(tables[0].columns[3].nullable);
        assert_eq!(tables[0].columns[3].type_name, "int4");
        assert_eq!(
            change(&out[0]).unwrap().after.as_ref().unwrap()[3],
            Value::Null
        );
    }

    #[test]
    fn key_columns_need_include_keys() {
        let event = || {
            testing::delete(
                7,
                vec![
                    "ada@example.com".into(),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ],
            )
        };
        let mut h = Harness::<Mask>::new(r#"{"columns": ["email"], "mode": "hash"}"#).unwrap();
        let (_, out) = h.run(vec![customers()], vec![event()]).unwrap();
        let before = change(&out[0]).unwrap().before.clone().unwrap();
        assert_eq!(before[0], "ada@example.com".into());

        let config = r#"{"columns": ["email"], "mode": "redact", "include_keys": true}"#;
        let mut h = Harness::<Mask>::new(config).unwrap();
        let (_, out) = h.run(vec![customers()], vec![event()]).unwrap();
        let before = change(&out[0]).unwrap().before.clone().unwrap();
        assert_eq!(before[0], "****".into());

        let config = r#"{"rules": [{"columns": ["email"], "mode": "null"}], "include_keys": true}"#;
        let mut h = Harness::<Mask>::new(config).unwrap();
        let err = h.run(vec![customers()], vec![event()]).unwrap_err();
        assert!(
            err.contains("cannot mask key column public.customers.email"),
            "{err}"
        );
    }
}
