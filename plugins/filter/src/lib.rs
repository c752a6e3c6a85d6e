//! Keeps or drops events by table, op and an expression over their values. See README.md for
//! the configuration and the expression language.

mod expr;

use std::collections::BTreeSet;

use walrelay_plugin_sdk::prelude::*;

use crate::expr::Expr;

struct Filter {
    /// `schema.table` names the filter applies to; `None`: every table.
    tables: Option<Vec<String>>,
    /// Ops the filter applies to; `None`: every op.
    ops: Option<Vec<Op>>,
    expr: Expr,
    /// `keep:` (true) or `drop:` (false).
    keep: bool,
    /// Input table ids already checked for columns the expression reads but the table lacks.
    checked: BTreeSet<u32>,
}

impl Plugin for Filter {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["tables", "ops", "keep", "drop"])?;
        let (key, source, keep) = match (config.get_str("keep")?, config.get_str("drop")?) {
            (Some(e), None) => ("keep", e, true),
            (None, Some(e)) => ("drop", e, false),
            (Some(_), Some(_)) => return Err("give either `keep` or `drop`, not both".into()),
            (None, None) => {
                return Err("an expression is required: `keep: <expr>` or `drop: <expr>`".into())
            }
        };
        let expr = expr::parse(source).map_err(|e| format!("{key}: {e}"))?;
        let tables = match config.get_strs("tables")? {
            None => None,
            Some(list) if list.is_empty() => {
                return Err("`tables` is empty: leave it out to filter every table".into())
            }
            Some(list) => Some(
                list.into_iter()
                    .map(|t| match t.split_once('.') {
                        Some((s, n)) if !s.is_empty() && !n.is_empty() => Ok(t.to_string()),
                        _ => Err(format!("`tables`: `{t}` is not a schema.table name")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let ops = match config.get_strs("ops")? {
            None => None,
            Some(list) if list.is_empty() => {
                return Err("`ops` is empty: leave it out to filter every op".into())
            }
            Some(list) => Some(
                list.into_iter()
                    .map(|o| match o {
                        "c" => Ok(Op::Create),
                        "u" => Ok(Op::Update),
                        "d" => Ok(Op::Delete),
                        "r" => Ok(Op::Read),
                        "t" => Ok(Op::Truncate),
                        _ => Err(format!("`ops`: `{o}` is not an op (c, u, d, r or t)")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Filter {
            tables,
            ops,
            expr,
            keep,
            checked: BTreeSet::new(),
        })
    }

    fn interest(&self) -> Interest {
        let mut interest = Interest::all();
        if let Some(tables) = &self.tables {
            interest = interest.only_tables(tables.iter().cloned());
        }
        if let Some(ops) = &self.ops {
            interest = interest.only_ops(ops.iter().copied());
        }
        // Only the values the expression reads are sent (none for `op in [...]`). A name with a
        // `*` in it matches more columns than itself: a harmless superset.
        let mut fields = Vec::new();
        self.expr.fields(&mut fields);
        let mut names: Vec<String> = fields.into_iter().map(|(_, name)| name).collect();
        names.sort_unstable();
        names.dedup();
        interest.only_columns(names)
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        // The relay passes other events around the plugin; check anyway (tests, other hosts).
        if !self.applies_to(&event) {
            return Ok(Emit::Keep(event));
        }
        self.check_columns(event.table());
        let matched = self.expr.eval(&event) == Some(true);
        Ok(if matched == self.keep {
            Emit::Keep(event)
        } else {
            Emit::Drop
        })
    }
}

impl Filter {
    fn applies_to(&self, event: &Event) -> bool {
        let table_ok = self.tables.as_ref().is_none_or(|tables| {
            let (schema, name) = (event.schema(), event.table_name());
            tables.iter().any(|t| {
                t.len() == schema.len() + 1 + name.len()
                    && t.starts_with(schema)
                    && t[schema.len()..].starts_with('.')
                    && t.ends_with(name)
            })
        });
        table_ok
            && self
                .ops
                .as_ref()
                .is_none_or(|ops| ops.contains(&event.op()))
    }

    /// Warns, once per table descriptor, about columns the expression reads that the table
    /// does not have (they read as null: most likely a typo).
    fn check_columns(&mut self, table: &Table) {
        if !self.checked.insert(table.id) {
            return;
        }
        let mut fields = Vec::new();
        self.expr.fields(&mut fields);
        let mut missing: Vec<&str> = fields
            .iter()
            .map(|(_, name)| name.as_str())
            .filter(|name| !table.columns.iter().any(|c| c.name == *name))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            host_log(
                Level::Warn,
                &format!(
                    "table {} has no column {}: it reads as null",
                    table.qualified_name(),
                    missing.join(", ")
                ),
            );
        }
    }
}

walrelay_plugin_sdk::export_plugin!(Filter);

#[cfg(test)]
mod tests;
