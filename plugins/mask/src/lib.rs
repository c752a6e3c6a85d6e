//! Redacts or hashes the values of chosen columns. See README.md for the configuration.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};
use walrelay_plugin_sdk::oid;
use walrelay_plugin_sdk::prelude::*;

enum Mode {
    Redact(String),
    Hash,
}

struct Mask {
    /// Patterns, each split into its dotted parts.
    patterns: Vec<Vec<String>>,
    mode: Mode,
    /// Input table id -> the columns to mask, by name, with whether each must be retyped to text.
    plans: BTreeMap<u32, Vec<(String, bool)>>,
}

impl Plugin for Mask {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["columns", "mode", "text"])?;
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
            .collect::<Result<_, _>>()?;
        let text = config.get_str("text")?;
        let mode = match config.get_str("mode")?.unwrap_or("redact") {
            "redact" => Mode::Redact(text.unwrap_or("****").to_string()),
            "hash" if text.is_some() => return Err("`text` only goes with mode `redact`".into()),
            "hash" => Mode::Hash,
            other => return Err(format!("mode must be `redact` or `hash`, not `{other}`")),
        };
        Ok(Mask {
            patterns,
            mode,
            plans: BTreeMap::new(),
        })
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let table = event.table();
        if !self.plans.contains_key(&table.id) {
            let plan = self.plan(table);
            self.plans.insert(table.id, plan);
        }
        let plan = &self.plans[&event.table().id];
        for (column, retype) in plan {
            for row in [Row::Before, Row::After] {
                if let Some(value) = event.get_mut(row, column) {
                    mask(&self.mode, value);
                }
            }
            if *retype {
                if let Some(c) = event.column_mut(column) {
                    c.set_text_type();
                }
            }
        }
        Ok(Emit::Keep(event))
    }
}

impl Mask {
    fn plan(&self, table: &Table) -> Vec<(String, bool)> {
        table
            .columns
            .iter()
            .filter(|c| {
                let name = [table.schema.as_str(), &table.name, &c.name];
                self.patterns
                    .iter()
                    .any(|p| name[3 - p.len()..].iter().zip(p).all(|(n, p)| glob(p, n)))
            })
            .map(|c| {
                let text = [oid::TEXT, oid::VARCHAR, oid::BPCHAR];
                let retype = !text.contains(&c.type_oid) && !text.contains(&c.base_type_oid);
                (c.name.clone(), retype)
            })
            .collect()
    }
}

fn mask(mode: &Mode, value: &mut Value) {
    let Some(text) = value.to_text() else {
        return; // null or unchanged TOAST
    };
    *value = Value::Text(match mode {
        Mode::Redact(redaction) => redaction.clone(),
        Mode::Hash => {
            let mut hex = String::with_capacity(64);
            for byte in Sha256::digest(text.as_bytes()).iter() {
                let _ = write!(hex, "{byte:02x}");
            }
            hex
        }
    });
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
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
        ] {
            assert!(Harness::<Mask>::new(config).is_err(), "{config}");
        }
    }
}
