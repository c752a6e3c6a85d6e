//! Plugin chain throughput: events/s through chains of 1, 3 and 5 pass-through and masking Rust
//! plugins, next to the same events with no chain, measured in one run.
//!
//! `cargo bench -p walrelay --bench chain` (builds the plugins with scripts/build-plugins, or
//! uses WALRELAY_PLUGINS_DIR). Events: 8-column updates of one table, in batches of 512 (the
//! capture batch size). "chain" is the time inside the chain alone; "chain+encode" adds the
//! Debezium JSON encoder, the rest of the relay's CPU work per event. `WALRELAY_BENCH_ONLY="3 x
//! mask"` runs the baseline and that one chain, e.g. under `perf record`; any chain of the shipped
//! plugins can be named so (`WALRELAY_BENCH_ONLY="rename"`, `"filter + mask"`).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use walrelay::encode::json::{DebeziumJson, JsonOptions, RecordOptions, UnknownTypes};
use walrelay::event::{
    ChangeEvent, Column, Lsn, Op, Output, ReplicaIdentity, SnapshotMarker, Source, TableSchema,
    Value,
};
use walrelay::pipeline::{PassThrough, Stage};
use walrelay::plugin::chain::{OnError, PluginChain, PluginSpec, Scope};
use walrelay::plugin::runtime::{Grants, Limits};

/// Events per measurement; `WALRELAY_BENCH_EVENTS` overrides (a longer run for a profile).
fn event_count() -> usize {
    std::env::var("WALRELAY_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000)
}
const BATCH: usize = 512;

fn plugins_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WALRELAY_PLUGINS_DIR") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let out = Command::new(repo.join("scripts/build-plugins"))
        .output()
        .expect("scripts/build-plugins");
    assert!(
        out.status.success(),
        "scripts/build-plugins failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("output dir")
            .trim(),
    )
}

fn table() -> Arc<TableSchema> {
    let col = |name: &str, oid: u32, key: bool| Column {
        name: name.into(),
        type_oid: oid,
        type_modifier: -1,
        type_name: String::new(),
        base_type_oid: oid,
        nullable: !key,
        is_key: key,
        default: None,
        enum_labels: vec![],
    };
    Arc::new(TableSchema {
        oid: 16384,
        schema: "public".into(),
        name: "customers".into(),
        columns: vec![
            col("id", 20, true),
            col("name", 25, false),
            col("email", 25, false),
            col("weight", 701, false),
            col("created_at", 1184, false),
            col("active", 16, false),
            col("price", 1700, false),
            col("sku", 2950, false),
        ],
        replica_identity: ReplicaIdentity::Default,
    })
}

fn events(t: &Arc<TableSchema>) -> Vec<ChangeEvent> {
    (0..event_count() as i64)
        .map(|i| ChangeEvent {
            op: Op::Update,
            table: t.clone(),
            before: None,
            after: Some(vec![
                Value::Int64(i),
                Value::Text(format!("customer {i}")),
                Value::Text(format!("customer{i}@example.com")),
                Value::Float64(i as f64 * 0.25),
                Value::TimestampTz(1_700_000_000_000_000 + i),
                Value::Bool(i % 2 == 0),
                Value::Numeric(format!("{}.{:02}", i, i % 100)),
                Value::Uuid(format!("3f1c9a52-7b8e-4d2a-9c61-{:012x}", i)),
            ]),
            source: Source {
                lsn: Lsn(0x1000 + i as u64),
                last_commit_lsn: None,
                tx_id: Some(1),
                ts_us: 1_700_000_000_000_000,
                snapshot: SnapshotMarker::False,
            },
            topic: None,
            headers: vec![],
        })
        .collect()
}

fn spec(dir: &Path, plugin: &str, i: usize) -> PluginSpec {
    let config = match plugin {
        "mask" => {
            serde_json::json!({"columns": ["public.customers.email"], "mode": "redact", "text": "****"})
        }
        "filter" => serde_json::json!({"keep": "op in [c, u, d, r]"}),
        "rename" => serde_json::json!({"columns": {"public.customers.name": "full_name"}}),
        _ => serde_json::Value::Null,
    };
    PluginSpec {
        name: format!("{plugin}-{i}"),
        component: dir.join(format!("{plugin}.wasm")),
        config_json: config.to_string(),
        origin: format!("bench plugins[{i}]"),
        limits: Limits {
            cpu_ms_per_batch: 1000,
            ..Limits::default()
        },
        on_error: OnError::Fail,
        scope: Scope::default(),
        grants: Grants::default(),
    }
}

/// Returns (time in the stage, time in stage + encoder).
fn measure(stage: &mut dyn Stage, evs: &[ChangeEvent]) -> (Duration, Duration) {
    let mut encoder = DebeziumJson::new(JsonOptions {
        record: RecordOptions {
            topic_prefix: "bench".into(),
            database: "bench".into(),
            connector_version: "bench".into(),
            unknown_types: UnknownTypes::Skip,
        },
        schemas: true,
    });
    let mut in_stage = Duration::ZERO;
    let mut in_encoder = Duration::ZERO;
    let mut bytes = 0usize;
    for chunk in evs.chunks(BATCH) {
        // The copy of the input (and dropping the output) is not the stage's work.
        let input = chunk.to_vec();
        let t = Instant::now();
        let out = stage.process(input).expect("chain runs");
        in_stage += t.elapsed();
        let t = Instant::now();
        for o in &out {
            if let Output::Change(e) = o {
                bytes += encoder.key(e).expect("key").map_or(0, |k| k.len());
                bytes += encoder.value(e, 0).expect("value").len();
            }
        }
        in_encoder += t.elapsed();
    }
    std::hint::black_box(bytes);
    (in_stage, in_stage + in_encoder)
}

fn main() {
    let dir = plugins_dir();
    let t = table();
    let evs = events(&t);
    // Warm the allocator and the encoder's caches once.
    measure(&mut PassThrough, &evs[..BATCH * 4]);
    let (base_stage, base_total) = measure(&mut PassThrough, &evs);
    let n = evs.len();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("{n} events of 8 columns, batches of {BATCH}; rates in events/s");
    println!(
        "{:<28} {:>14} {:>16} {:>12}",
        "chain", "chain alone", "chain+encode", "vs no chain"
    );
    println!(
        "{:<28} {:>14} {:>16.0} {:>12.2}",
        "none (baseline)",
        "-",
        rate(base_total),
        1.0
    );
    let _ = base_stage;
    // WALRELAY_BENCH_ONLY="3 x mask" runs one chain (for a profile of it alone).
    let only = std::env::var("WALRELAY_BENCH_ONLY").ok();
    let mut chains: Vec<(String, Vec<&str>)> = Vec::new();
    for plugin in ["passthrough", "mask"] {
        for n in [1, 3, 5] {
            chains.push((format!("{n} x {plugin}"), vec![plugin; n]));
        }
    }
    // The chain of bench/run's chain3 run.
    chains.push((
        "filter + rename + mask".into(),
        vec!["filter", "rename", "mask"],
    ));
    // Any other chain of the shipped plugins, named as "filter + rename".
    if let Some(o) = only.as_deref() {
        if !chains.iter().any(|(name, _)| name == o) {
            let plugins: Vec<&str> = o.split('+').map(str::trim).collect();
            chains.push((o.to_string(), plugins));
        }
    }
    for (name, plugins) in chains {
        {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let specs = plugins
                .iter()
                .enumerate()
                .map(|(i, plugin)| spec(&dir, plugin, i))
                .collect();
            let mut chain = PluginChain::new(specs, "bench").expect("chain loads");
            measure(&mut chain, &evs[..BATCH * 4]);
            let (in_chain, total) = measure(&mut chain, &evs);
            println!(
                "{:<28} {:>14.0} {:>16.0} {:>12.2}",
                name,
                rate(in_chain),
                rate(total),
                rate(total) / rate(base_total)
            );
        }
    }
}
