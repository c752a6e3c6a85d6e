//! The SQL side of capture: server checks, publications, slots and table schemas from the catalog.
//!
//! Relation messages in the replication stream carry column names, types and replica-identity
//! flags, but not `NOT NULL`, defaults, enum labels or the primary key (with `REPLICA IDENTITY
//! FULL` every column is flagged). Those come from the catalog, read when a relation is first
//! seen or changes: best effort, as of read time, not as of the WAL position.
use std::collections::{HashMap, HashSet};

use tokio_postgres::Client;

use crate::config::glob;
use crate::event::{Column, Lsn, ReplicaIdentity, TableSchema};

/// Errors of the catalog side. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("PostgreSQL query failed ({what}): {source}")]
    Query {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("wal_level is `{0}`, logical replication needs `logical`: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")]
    WalLevel(String),
    #[error("role `{0}` may not replicate: ALTER ROLE {0} WITH REPLICATION (or grant your provider's replication role, e.g. rds_replication)")]
    NoReplication(String),
    #[error("table {0} does not exist (source.postgres.tables)")]
    NoTable(String),
    #[error("publication `{publication}` does not publish {table} and walrelay may not add it ({source}): run `ALTER PUBLICATION {publication} ADD TABLE {table}` as the table's owner")]
    PublicationAdd {
        publication: String,
        table: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("publication `{publication}` publishes the partitioned table(s) {tables} partition by partition and walrelay may not change that ({source}): run `ALTER PUBLICATION {publication} SET (publish_via_partition_root = true)` as its owner, so their changes arrive as changes of the partitioned table")]
    PublicationViaRoot {
        publication: String,
        tables: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the pattern `{0}` of source.postgres.tables matches no table (ordinary or partitioned tables outside the system schemas; names are case-sensitive)")]
    NoMatch(String),
    #[error("source.postgres.exclude_tables leaves none of the tables source.postgres.tables selects ({0})")]
    NothingSelected(String),
    #[error("publication `{publication}` does not exist and source.postgres.publication_mode is `disabled`: walrelay does not create it. Run as the tables' owner: {sql}")]
    PublicationMissing { publication: String, sql: String },
    #[error("publication `{publication}` does not publish {tables} and source.postgres.publication_mode is `{mode}`: walrelay does not alter it. Run as the tables' owner: {sql}")]
    PublicationLacks {
        publication: String,
        tables: String,
        mode: &'static str,
        sql: String,
    },
    #[error("publication `{publication}` publishes the partitioned table(s) {tables} partition by partition and source.postgres.publication_mode is `disabled`: run `ALTER PUBLICATION {publication} SET (publish_via_partition_root = true)` as its owner")]
    PublicationNotViaRoot { publication: String, tables: String },
    #[error("replication slot `{slot}` uses the output plugin `{plugin}`, walrelay needs pgoutput: drop it (SELECT pg_drop_replication_slot('{slot}')) or choose another source.postgres.slot")]
    SlotPlugin { slot: String, plugin: String },
    #[error("replication slot `{slot}` belongs to database `{database}`, not `{expected}`: choose another source.postgres.slot")]
    SlotDatabase {
        slot: String,
        database: String,
        expected: String,
    },
    #[error("replication slot `{slot}` is in use by another process (pid {pid}): stop the other consumer, or choose another source.postgres.slot")]
    SlotActive { slot: String, pid: i32 },
    #[error("replication slot `{slot}` was invalidated ({status}): the WAL it needed is gone. Drop it (SELECT pg_drop_replication_slot('{slot}')) and restart walrelay with snapshot: initial to re-read the tables")]
    SlotInvalidated { slot: String, status: String },
}

impl CatalogError {
    /// Whether reconnecting later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Query { source, .. } => is_transient_pg(source),
            // The other holder of the slot may be a previous walrelay that is exiting.
            Self::SlotActive { .. } => true,
            _ => false,
        }
    }
}

/// Connection-level PostgreSQL failures (closed socket, server shutting down) are transient;
/// SQL errors (permissions, missing objects) are not.
pub fn is_transient_pg(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("57P") || c.starts_with("08") || c == "53300"
        }
        None => true, // I/O and protocol errors carry no SQLSTATE
    }
}

type Result<T> = std::result::Result<T, CatalogError>;

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> CatalogError + '_ {
    move |source| CatalogError::Query {
        what: what.to_string(),
        source,
    }
}

/// Quotes an identifier for SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Checks `wal_level` and the role's REPLICATION attribute; returns the database name.
pub async fn check_server(client: &Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_user::text, current_database()::text, \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(q("server settings"))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(CatalogError::WalLevel(wal_level));
    }
    let user: String = row.get(1);
    let can_replicate: Option<bool> = row.get(3);
    if can_replicate != Some(true) {
        // Some managed services grant replication through a role membership instead.
        let member: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname IN ('rds_replication', 'cloudsqlsuperuser', 'azure_pg_admin') \
                 AND pg_has_role(current_user, r.oid, 'member'))",
                &[],
            )
            .await
            .map_err(q("replication role membership"))?
            .get(0);
        if !member {
            return Err(CatalogError::NoReplication(user));
        }
    }
    Ok(row.get(2))
}

/// `source.postgres.publication_mode`: whether walrelay creates and alters the publication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PublicationMode {
    /// `CREATE PUBLICATION … FOR ALL TABLES` when missing (superuser only); an existing one must
    /// publish the selected tables.
    AllTables,
    /// `CREATE PUBLICATION … FOR TABLE` the selected tables when missing; tables it lacks are
    /// added.
    #[default]
    Filtered,
    /// Never created nor altered: it must exist and publish the selected tables.
    Disabled,
}

impl PublicationMode {
    fn name(self) -> &'static str {
        match self {
            Self::AllTables => "all_tables",
            Self::Filtered => "filtered",
            Self::Disabled => "disabled",
        }
    }
}

/// The tables selected by `source.postgres.tables` and `exclude_tables`, resolved against the
/// catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectedTables {
    /// `schema.table`, in the order of the patterns that selected them (each pattern's matches
    /// sorted by name).
    pub names: Vec<String>,
    /// The selected relations and every partition below them: the relations whose changes are
    /// streamed (a partition's arrive under its own oid when not published via the root).
    pub oids: HashSet<u32>,
}

/// A table the catalog offers to selection.
struct Candidate {
    oid: u32,
    schema: String,
    name: String,
    /// The partitioned table this is a partition of.
    parent: Option<u32>,
}

/// Resolves `include` and `exclude` (`schema.table`, each part with optional `*` wildcards)
/// against the ordinary and partitioned tables outside the system schemas. A partition is left
/// out when a partitioned table above it is selected (its rows arrive through that table). An
/// include entry that matches nothing is an error; an exclude entry that does is a warning.
pub async fn resolve_tables(
    client: &Client,
    include: &[String],
    exclude: &[String],
) -> Result<SelectedTables> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, \
             (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%' \
             AND n.nspname <> 'information_schema' ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(q("tables of the catalog"))?;
    let candidates: Vec<Candidate> = rows
        .iter()
        .map(|r| Candidate {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            parent: r.get(3),
        })
        .collect();
    select(&candidates, include, exclude)
}

fn split(pattern: &str) -> (&str, &str) {
    pattern.split_once('.').unwrap_or(("public", pattern))
}

fn select(
    candidates: &[Candidate],
    include: &[String],
    exclude: &[String],
) -> Result<SelectedTables> {
    let matching = |pattern: &str| -> Vec<&Candidate> {
        let (s, t) = split(pattern);
        candidates
            .iter()
            .filter(|c| glob::matches(s, &c.schema) && glob::matches(t, &c.name))
            .collect()
    };
    let excluded: HashSet<u32> = exclude
        .iter()
        .flat_map(|pattern| {
            let oids: Vec<u32> = matching(pattern).iter().map(|c| c.oid).collect();
            if oids.is_empty() {
                tracing::warn!(pattern = %pattern, "source.postgres.exclude_tables: the pattern matches no table");
            }
            oids
        })
        .collect();
    let mut chosen: Vec<&Candidate> = Vec::new();
    for pattern in include {
        let found = matching(pattern);
        if found.is_empty() {
            return Err(if glob::is_pattern(pattern) {
                CatalogError::NoMatch(pattern.clone())
            } else {
                CatalogError::NoTable(pattern.clone())
            });
        }
        for c in found {
            if !excluded.contains(&c.oid) && !chosen.iter().any(|x| x.oid == c.oid) {
                chosen.push(c);
            }
        }
    }
    if chosen.is_empty() {
        return Err(CatalogError::NothingSelected(include.join(", ")));
    }
    let parents: HashMap<u32, u32> = candidates
        .iter()
        .filter_map(|c| c.parent.map(|p| (c.oid, p)))
        .collect();
    let picked: HashSet<u32> = chosen.iter().map(|c| c.oid).collect();
    // Whether a table above `oid` (not itself) is picked.
    let under_picked = |oid: u32| {
        let mut at = oid;
        let mut hops = 0;
        while let Some(&parent) = parents.get(&at) {
            if picked.contains(&parent) {
                return true;
            }
            at = parent;
            hops += 1;
            if hops > 1000 {
                break;
            }
        }
        false
    };
    let mut names = Vec::new();
    for c in &chosen {
        if under_picked(c.oid) {
            tracing::info!(table = %format!("{}.{}", c.schema, c.name), "left out: a partition of a selected partitioned table, whose events it produces");
        } else {
            names.push(format!("{}.{}", c.schema, c.name));
        }
    }
    let oids = candidates
        .iter()
        .filter(|c| picked.contains(&c.oid) || under_picked(c.oid))
        .map(|c| c.oid)
        .collect();
    Ok(SelectedTables { names, oids })
}

/// Creates the publication for `tables` when missing, adds tables it lacks, as `mode` allows.
/// `tables` are `schema.table`, resolved from the catalog.
///
/// Partitioned tables are published through their root (`publish_via_partition_root`,
/// PostgreSQL 13+): changes to any partition arrive as changes of the partitioned table, on its
/// topic, as Debezium users expect. A publication created by someone else without that option
/// gets it set when walrelay may, else the error says how.
pub async fn ensure_publication(
    client: &Client,
    publication: &str,
    tables: &[String],
    server_version: i32,
    mode: PublicationMode,
) -> Result<()> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(q("publication lookup"))?
        .is_some();
    let quoted: Vec<String> = tables.iter().map(|t| quote_table(t)).collect();
    let via_root = if server_version >= 130_000 {
        " WITH (publish_via_partition_root = true)"
    } else {
        ""
    };
    if !exists {
        let target = match mode {
            PublicationMode::AllTables => "ALL TABLES".to_string(),
            _ => format!("TABLE {}", quoted.join(", ")),
        };
        let sql = format!(
            "CREATE PUBLICATION {} FOR {target}{via_root}",
            quote_ident(publication)
        );
        if mode == PublicationMode::Disabled {
            return Err(CatalogError::PublicationMissing {
                publication: publication.to_string(),
                sql: format!("{sql};"),
            });
        }
        client
            .batch_execute(&sql)
            .await
            .map_err(q("CREATE PUBLICATION"))?;
        tracing::info!(publication, tables = %tables.join(", "), "created publication");
        return Ok(());
    }
    if server_version >= 130_000 {
        let partitioned: Vec<String> = client
            .query(
                "SELECT n.nspname::text || '.' || c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'p' AND n.nspname::text || '.' || c.relname::text = ANY($1) \
                 AND NOT (SELECT pubviaroot FROM pg_publication WHERE pubname = $2)",
                &[&tables, &publication],
            )
            .await
            .map_err(q("partitioned tables"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !partitioned.is_empty() && mode == PublicationMode::Disabled {
            return Err(CatalogError::PublicationNotViaRoot {
                publication: publication.to_string(),
                tables: partitioned.join(", "),
            });
        }
        if !partitioned.is_empty() {
            let sql = format!(
                "ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
                quote_ident(publication)
            );
            client.batch_execute(&sql).await.map_err(|source| {
                CatalogError::PublicationViaRoot {
                    publication: publication.to_string(),
                    tables: partitioned.join(", "),
                    source,
                }
            })?;
            tracing::info!(
                publication,
                "publication set to publish partitioned tables through their root"
            );
        }
    }
    let rows = client
        .query(
            "SELECT schemaname::text || '.' || tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(q("publication tables"))?;
    let published: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if mode != PublicationMode::Filtered {
        let missing: Vec<&String> = tables.iter().filter(|t| !published.contains(t)).collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|t| t.to_string()).collect();
            let quoted: Vec<String> = missing.iter().map(|t| quote_table(t)).collect();
            return Err(CatalogError::PublicationLacks {
                publication: publication.to_string(),
                tables: names.join(", "),
                mode: mode.name(),
                sql: format!(
                    "ALTER PUBLICATION {} ADD TABLE {};",
                    quote_ident(publication),
                    quoted.join(", ")
                ),
            });
        }
        return Ok(());
    }
    for (table, quoted) in tables.iter().zip(&quoted) {
        if !published.contains(table) {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {quoted}",
                quote_ident(publication)
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|source| CatalogError::PublicationAdd {
                    publication: publication.to_string(),
                    table: table.clone(),
                    source,
                })?;
            tracing::info!(publication, table, "added table to publication");
        }
    }
    Ok(())
}

/// `schema.table` → `"schema"."table"`.
pub fn quote_table(qualified: &str) -> String {
    match qualified.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote_ident(s), quote_ident(t)),
        None => quote_ident(qualified),
    }
}

/// The state of a replication slot.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub plugin: String,
    pub database: String,
    pub active_pid: Option<i32>,
    pub confirmed_flush: Option<Lsn>,
    /// `wal_status`: reserved, extended, unreserved or lost (an invalidated slot).
    pub wal_status: Option<String>,
}

/// Looks up `slot`; `None` when it does not exist.
pub async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>> {
    let row = client
        .query_opt(
            // wal_status through to_jsonb: the column exists from PostgreSQL 13 on; on 12 the
            // lookup still works (and sees no status).
            "SELECT coalesce(plugin::text, ''), coalesce(database::text, ''), active_pid, \
             confirmed_flush_lsn::text, to_jsonb(s) ->> 'wal_status' \
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(q("replication slot lookup"))?;
    Ok(row.map(|r| SlotInfo {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        confirmed_flush: r
            .get::<_, Option<String>>(3)
            .as_deref()
            .and_then(Lsn::parse),
        wal_status: r.get(4),
    }))
}

/// Checks that an existing slot is usable by this relay.
pub fn check_slot(slot: &str, info: &SlotInfo, database: &str) -> Result<()> {
    if info.plugin != "pgoutput" {
        return Err(CatalogError::SlotPlugin {
            slot: slot.into(),
            plugin: info.plugin.clone(),
        });
    }
    if info.database != database {
        return Err(CatalogError::SlotDatabase {
            slot: slot.into(),
            database: info.database.clone(),
            expected: database.into(),
        });
    }
    if let Some(status) = info.wal_status.as_deref() {
        if status == "lost" {
            return Err(CatalogError::SlotInvalidated {
                slot: slot.into(),
                status: status.into(),
            });
        }
    }
    if let Some(pid) = info.active_pid {
        return Err(CatalogError::SlotActive {
            slot: slot.into(),
            pid,
        });
    }
    Ok(())
}

/// Drops a slot (used to redo an interrupted initial snapshot from a fresh exported snapshot).
pub async fn drop_slot(client: &Client, slot: &str) -> Result<()> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(q("pg_drop_replication_slot"))?;
    Ok(())
}

const COLUMNS_SQL: &str = "
SELECT a.attname::text,
       a.atttypid::oid,
       (CASE WHEN t.typtype = 'd' AND a.atttypmod = -1 THEN t.typtypmod ELSE a.atttypmod END),
       t.typname::text,
       (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::oid,
       NOT a.attnotnull,
       coalesce(a.attnum = ANY (pk.indkey), false),
       pg_get_expr(d.adbin, d.adrelid),
       CASE WHEN t.typtype = 'e'
            THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
            WHEN t.typelem <> 0 AND (SELECT et.typtype FROM pg_type et WHERE et.oid = t.typelem) = 'e'
            THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.typelem ORDER BY e.enumsortorder)
       END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_index pk ON pk.indrelid = a.attrelid AND pk.indisprimary
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum";

/// Reads a table's schema from the catalog by `schema.table`.
pub async fn load_table_by_name(client: &Client, qualified: &str) -> Result<TableSchema> {
    let (schema, name) = qualified.split_once('.').unwrap_or(("public", qualified));
    let row = client
        .query_opt(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&schema, &name],
        )
        .await
        .map_err(q("table lookup"))?
        .ok_or_else(|| CatalogError::NoTable(qualified.to_string()))?;
    load_table(client, row.get::<_, u32>(0)).await
}

/// Reads a table's schema from the catalog by oid. The key is the primary key; without one, the
/// replica identity index's columns.
pub async fn load_table(client: &Client, oid: u32) -> Result<TableSchema> {
    let rel = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text, \
             (SELECT i.indkey::int2[] FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(q("relation lookup"))?
        .ok_or_else(|| CatalogError::NoTable(format!("with oid {oid}")))?;
    let schema: String = rel.get(0);
    let name: String = rel.get(1);
    let ident: String = rel.get(2);
    let replica_identity =
        ReplicaIdentity::from_code(ident.as_bytes().first().copied().unwrap_or(b'd'))
            .unwrap_or(ReplicaIdentity::Default);
    let rows = client
        .query(COLUMNS_SQL, &[&oid])
        .await
        .map_err(q("table columns"))?;
    let mut columns: Vec<Column> = rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            type_oid: r.get(1),
            type_modifier: r.get(2),
            type_name: r.get(3),
            base_type_oid: r.get(4),
            nullable: r.get(5),
            is_key: r.get(6),
            default: r.get(7),
            enum_labels: r.get::<_, Option<Vec<String>>>(8).unwrap_or_default(),
        })
        .collect();
    if !columns.iter().any(|c| c.is_key) {
        // No primary key: fall back to the replica identity index, as Debezium does.
        let attnums: Option<Vec<i16>> = rel.get(3);
        if let Some(attnums) = attnums {
            let names = client
                .query(
                    "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum = ANY($2)",
                    &[&oid, &attnums],
                )
                .await
                .map_err(q("replica identity index columns"))?;
            let names: Vec<String> = names.iter().map(|r| r.get(0)).collect();
            for c in &mut columns {
                c.is_key = names.contains(&c.name);
            }
        }
    }
    Ok(TableSchema {
        oid,
        schema,
        name,
        columns,
        replica_identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<Candidate> {
        let c = |oid, schema: &str, name: &str, parent| Candidate {
            oid,
            schema: schema.into(),
            name: name.into(),
            parent,
        };
        vec![
            c(1, "public", "customers", None),
            c(2, "public", "orders", None),
            c(3, "public", "orders_2024", Some(2)),
            c(4, "public", "orders_2024_q1", Some(3)),
            c(5, "public", "products", None),
            c(6, "sales", "order_lines", None),
            c(7, "sales", "order_notes", None),
            c(8, "sales", "refunds", None),
        ]
    }

    fn names(include: &[&str], exclude: &[&str]) -> Result<SelectedTables> {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        select(&candidates(), &own(include), &own(exclude))
    }

    #[test]
    fn patterns_resolve_in_order_without_partitions_of_selected_tables() {
        let got = names(&["sales.order_*", "public.*"], &["public.products"]).unwrap();
        assert_eq!(
            got.names,
            [
                "sales.order_lines",
                "sales.order_notes",
                "public.customers",
                "public.orders"
            ]
        );
        // The partitions stream under the partitioned table (oids kept, names not).
        let mut oids: Vec<u32> = got.oids.into_iter().collect();
        oids.sort();
        assert_eq!(oids, [1, 2, 3, 4, 6, 7]);
    }

    #[test]
    fn a_partition_alone_is_selected_and_bare_names_are_public() {
        let got = names(&["orders_2024"], &[]).unwrap();
        assert_eq!(got.names, ["public.orders_2024"]);
        let mut oids: Vec<u32> = got.oids.into_iter().collect();
        oids.sort();
        assert_eq!(oids, [3, 4]);
        // Listed twice (by a name and a pattern): once.
        let got = names(&["public.customers", "public.c*"], &[]).unwrap();
        assert_eq!(got.names, ["public.customers"]);
    }

    #[test]
    fn unmatched_patterns_and_empty_selections_are_errors() {
        let err = names(&["public.*", "sales.nothing_*"], &[]).unwrap_err();
        assert!(matches!(&err, CatalogError::NoMatch(p) if p == "sales.nothing_*"));
        assert!(err.to_string().contains("`sales.nothing_*`"), "{err}");
        let err = names(&["public.missing"], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table public.missing does not exist (source.postgres.tables)"
        );
        let err = names(&["sales.*"], &["sales.*"]).unwrap_err();
        assert!(matches!(err, CatalogError::NothingSelected(_)));
        // An exclude pattern matching nothing only warns.
        assert_eq!(
            names(&["sales.refunds"], &["nope.*"]).unwrap().names,
            ["sales.refunds"]
        );
    }
}
