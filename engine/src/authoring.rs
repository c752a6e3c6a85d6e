//! Plugin-author tools of the `walrelay` command: `plugin test`, `plugin new`, `plugin diff` and
//! `record`. Events go in and out as `walrelay-events/v1` lines (`docs/events-format.md`).
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};

use walrelay::event::{ChangeEvent, Lsn};
use walrelay::events_file::{self, Item, Located, Writer};
use walrelay::plugin::chain::{PluginChain, PluginSpec};
use walrelay::plugin::declarative;

/// `walrelay plugin test --plugin P --events E`: prints the chain's output as events-file lines.
pub fn test_events(
    plugin: &Path,
    events: &Path,
    config: Option<&Path>,
    prefix: &str,
) -> anyhow::Result<ExitCode> {
    let config_json = match config {
        Some(path) => read_config_value(path)?.to_string(),
        None => "null".to_string(),
    };
    let items = events_file::read_file(events)?;
    let mut writer = Writer::new();
    for l in &items {
        if let Item::Table(t) = &l.item {
            writer.assume(t);
        }
    }
    let inputs = events_file::events(items);
    let name = plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let spec = declarative::author_spec(
        &name,
        plugin,
        config_json,
        format!("plugin {}", plugin.display()),
    );
    let mut chain = PluginChain::new(vec![spec.clone()], prefix)?;
    let batch: Vec<ChangeEvent> = inputs.iter().map(|l| l.item.clone()).collect();
    let outputs = match chain.run(batch) {
        Ok(o) => o,
        Err(err) => return Err(attribute_failure(spec, prefix, events, &inputs, err)),
    };
    let mut stdout = std::io::stdout().lock();
    for o in &outputs {
        for line in writer
            .output_lines(o)
            .map_err(|e| anyhow!("an output: {e}"))?
        {
            writeln!(stdout, "{line}")?;
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The chain failed on the batch of all events: find the first event that fails alone, on a
/// fresh chain, and name its line.
fn attribute_failure(
    spec: PluginSpec,
    prefix: &str,
    events: &Path,
    inputs: &[Located<ChangeEvent>],
    err: anyhow::Error,
) -> anyhow::Error {
    let Ok(mut chain) = PluginChain::new(vec![spec], prefix) else {
        return err;
    };
    for l in inputs {
        if let Err(e) = chain.run(vec![l.item.clone()]) {
            return anyhow!(
                "{}:{}: the `{}` event of {}: {e:#}",
                events.display(),
                l.line,
                l.item.op.code(),
                l.item.table.qualified_name()
            );
        }
    }
    anyhow!(
        "{}: the batch of all {} events failed, although none fails alone: {err:#}",
        events.display(),
        inputs.len()
    )
}

/// A plugin's `config` value from a YAML or JSON file.
fn read_config_value(path: &Path) -> anyhow::Result<Json> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plugin config {}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// `walrelay plugin test --cases FILE...`: prints `ok`/`FAILED` per case.
pub fn test_cases(files: &[PathBuf], components: Option<&Path>) -> anyhow::Result<ExitCode> {
    let components = components.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("plugins")
    });
    let mut failed = 0;
    let mut cases = 0;
    let mut broken = 0;
    for file in files {
        match declarative::run_file(file, &components) {
            Ok(report) => {
                println!("{report}");
                failed += report.failed().len();
                cases += report.cases.len();
            }
            Err(e) => {
                // The other files still run.
                println!("FAILED  {e:#}");
                broken += 1;
            }
        }
    }
    if files.len() == 1 && broken == 1 {
        return Ok(ExitCode::FAILURE);
    }
    if files.len() > 1 {
        println!(
            "all files: {cases} cases, {} passed, {failed} failed; {broken} of {} files could not run",
            cases - failed,
            files.len()
        );
    }
    Ok(if failed == 0 && broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `walrelay plugin diff`: runs two configurations' chains over the same events, one event at a
/// time, and reports the events whose outputs differ.
pub fn diff(current: &Path, candidate: &Path, events: &Path) -> anyhow::Result<ExitCode> {
    let load = |path: &Path| -> anyhow::Result<(Vec<PluginSpec>, String)> {
        let cfg = walrelay::config::load(path)?;
        let settings = walrelay::pipeline::RelaySettings::from_config(&cfg)
            .with_context(|| path.display().to_string())?;
        Ok((settings.plugins, settings.topic_prefix))
    };
    let (specs_a, prefix_a) = load(current)?;
    let (specs_b, prefix_b) = load(candidate)?;
    let mut chain_a = PluginChain::new(specs_a, &prefix_a)
        .with_context(|| format!("{}: the plugin chain", current.display()))?;
    let mut chain_b = PluginChain::new(specs_b, &prefix_b)
        .with_context(|| format!("{}: the plugin chain", candidate.display()))?;
    let inputs = events_file::events(events_file::read_file(events)?);
    let mut out = std::io::stdout().lock();
    let mut differ = 0;
    for l in &inputs {
        let a = outputs_of(&mut chain_a, &l.item);
        let b = outputs_of(&mut chain_b, &l.item);
        if a == b {
            continue;
        }
        differ += 1;
        writeln!(out, "{}:{}: the outputs differ", events.display(), l.line)?;
        writeln!(out, "  input:")?;
        for line in Writer::new()
            .event_lines(&l.item)
            .unwrap_or_else(|e| vec![format!("(unwritable: {e})")])
        {
            writeln!(out, "    {line}")?;
        }
        for (what, path, lines) in [("current", current, &a), ("candidate", candidate, &b)] {
            writeln!(out, "  {what} ({}):", path.display())?;
            if lines.is_empty() {
                writeln!(out, "    (no output: the event is dropped)")?;
            }
            for line in lines {
                writeln!(out, "    {line}")?;
            }
        }
    }
    writeln!(out, "{differ} of {} events differ", inputs.len())?;
    out.flush()?;
    Ok(if differ == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One event's outputs as lines, a reshaped table's line before its events; a failure is one
/// `error:` line.
fn outputs_of(chain: &mut PluginChain, ev: &ChangeEvent) -> Vec<String> {
    match chain.run(vec![ev.clone()]) {
        Ok(outputs) => {
            let mut w = Writer::new();
            w.assume(&ev.table);
            let mut lines = Vec::new();
            for o in &outputs {
                match w.output_lines(o) {
                    Ok(l) => lines.extend(l),
                    Err(e) => lines.push(format!("(unwritable output: {e})")),
                }
            }
            lines
        }
        Err(e) => vec![format!("error: {e:#}")],
    }
}

/// `walrelay record`: captures change events from the configured slot without confirming
/// anything, and writes them as events-file lines.
pub fn record(
    config: &Path,
    out: &Path,
    limit: Option<usize>,
    idle: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = walrelay::config::load(config)?;
    // Recording runs no plugin: their components need not be at hand.
    cfg.plugins.clear();
    let settings = walrelay::pipeline::RelaySettings::from_config(&cfg)
        .with_context(|| config.display().to_string())?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut file = std::io::BufWriter::new(file);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("walrelay-record")
        .build()
        .context("starting the async runtime")?;
    let slot = settings.source.slot.clone();
    let recorded = runtime.block_on(async move {
        use walrelay::pg::capture::Capture;
        use walrelay::pipeline::Item as PipeItem;
        let state = walrelay::state::StateStore::new(&settings.state_dir);
        let capture = Capture::prepare(settings.source.clone(), state).await?;
        let (items_tx, mut items_rx) = mpsc::channel::<Vec<PipeItem>>(16);
        // Never moves from zero: PostgreSQL ignores a zero flush position, so the slot's
        // confirmed_flush_lsn stays where it is and the same changes can be recorded again.
        let (confirmed_tx, confirmed_rx) = watch::channel(Lsn::ZERO);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(capture.run(items_tx, confirmed_rx, stop_rx));
        let mut writer = Writer::new();
        let mut count = 0usize;
        let mut last = Instant::now();
        let mut write_error: Option<anyhow::Error> = None;
        let mut signal = std::pin::pin!(crate::wait_for_signal());
        'record: while limit.is_none_or(|n| count < n) {
            let idle_left = idle.map(|d| d.saturating_sub(last.elapsed()));
            let idle_wait = async {
                match idle_left {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                batch = items_rx.recv() => {
                    let Some(batch) = batch else { break 'record };
                    for item in batch {
                        let PipeItem::Event(ev) = item else { continue };
                        let lines = writer
                            .event_lines(&ev)
                            .map_err(|e| anyhow!("cannot write an event of {}: {e}", ev.table.qualified_name()));
                        let written = lines.and_then(|lines| {
                            for line in lines {
                                writeln!(file, "{line}")?;
                            }
                            Ok(())
                        });
                        if let Err(e) = written {
                            write_error = Some(e);
                            break 'record;
                        }
                        count += 1;
                        last = Instant::now();
                        if limit.is_some_and(|n| count >= n) {
                            break 'record;
                        }
                    }
                }
                _ = idle_wait => break 'record,
                _ = &mut signal => break 'record,
            }
        }
        // Stop capture without a position to confirm, and let it finish.
        let _ = stop_tx.send(true);
        drop(confirmed_tx);
        let drain = async { while items_rx.recv().await.is_some() {} };
        let (_, captured) = tokio::join!(drain, task);
        captured
            .map_err(|e| anyhow!("capture task panicked: {e}"))?
            .context("capture")?;
        file.flush()?;
        match write_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    })?;
    eprintln!(
        "recorded {recorded} events to {} (slot {slot}: nothing confirmed, its position did not move)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// plugin new

/// `walrelay plugin new NAME [--dir PATH]`: writes a plugin crate.
pub fn new_plugin(name: &str, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    check_crate_name(name)?;
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        let empty = dir.is_dir()
            && std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .next()
                .is_none();
        if !empty {
            bail!(
                "{} already exists and is not an empty directory: choose another --dir",
                dir.display()
            );
        }
    }
    let abs =
        std::path::absolute(&dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let sdk = find_sdk(&abs);
    let files = scaffold(
        name,
        sdk.as_ref().map(|s| relative_path(&abs, s)).as_deref(),
    );
    std::fs::create_dir_all(abs.join("src"))
        .and_then(|()| std::fs::create_dir_all(abs.join("tests")))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, text) in &files {
        std::fs::write(abs.join(path), text)
            .with_context(|| format!("cannot write {}", dir.join(path).display()))?;
    }
    // Seed the lock file with the versions walrelay's own plugins are built and tested with.
    if let Some(lock) = sdk
        .as_ref()
        .and_then(|s| s.parent())
        .map(|repo| repo.join("plugins/Cargo.lock"))
        .filter(|l| l.is_file())
    {
        let _ = std::fs::copy(lock, abs.join("Cargo.lock"));
    }
    println!("created plugin crate `{name}` in {}", dir.display());
    match &sdk {
        Some(s) => println!("walrelay-plugin-sdk: path dependency on {}", s.display()),
        None => println!(
            "walrelay-plugin-sdk: version 0.1.0 from the registry (no walrelay checkout above {})",
            abs.display()
        ),
    }
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo build --release --target wasm32-wasip2");
    println!(
        "  walrelay plugin test --cases tests/basic.yaml --components target/wasm32-wasip2/release"
    );
    Ok(ExitCode::SUCCESS)
}

fn check_crate_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "`{name}` is not a plugin name: use lower-case letters, digits, `-` and `_`, \
             starting with a letter"
        );
    }
    Ok(())
}

/// The walrelay checkout's `plugin-sdk` directory, looking up from `dir` (which need not exist).
fn find_sdk(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|a| {
        let sdk = a.join("plugin-sdk");
        let manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).ok()?;
        manifest
            .contains("name = \"walrelay-plugin-sdk\"")
            .then(|| std::fs::canonicalize(&sdk).unwrap_or(sdk))
    })
}

/// `to` relative to `from` (both absolute), e.g. `../../plugin-sdk`.
fn relative_path(from: &Path, to: &Path) -> String {
    let norm = |p: &Path| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    // Resolve symlinks in the part of `from` that exists, as `to` was.
    let existing = from
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let rest = from.strip_prefix(existing).unwrap_or(Path::new(""));
    let from = std::fs::canonicalize(existing)
        .unwrap_or_else(|_| existing.to_path_buf())
        .join(rest);
    let (from, to) = (norm(&from), norm(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(to[common..].iter().cloned());
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

fn type_name_for(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The scaffold's files: (path inside the crate, text).
fn scaffold(name: &str, sdk_path: Option<&str>) -> Vec<(&'static str, String)> {
    let ty = type_name_for(name);
    let wasm = name.replace('-', "_");
    let dependency = match sdk_path {
        Some(p) => format!("walrelay-plugin-sdk = {{ path = \"{p}\" }}"),
        None => "# No walrelay checkout was found above this directory when this crate was created:\n\
                 # the SDK comes from the registry, pinned to the interface version this relay runs.\n\
                 walrelay-plugin-sdk = \"=0.1.0\""
            .to_string(),
    };
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
description = "walrelay plugin: drops deletes (a starting point)"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# A WebAssembly component: cargo build --release --target wasm32-wasip2
crate-type = ["cdylib"]

[dependencies]
{dependency}

# A workspace of its own, even inside another project's tree.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
# A panic traps the instance whatever this says; `abort` drops the unwinding code.
panic = "abort"
"#
    );
    let lib_rs = format!(
        r#"//! `{name}`: a walrelay plugin. It drops delete events (op `d`) and passes every other
//! event unchanged. With `keep_deletes: true` in its `config:` it passes deletes too.
//!
//! The relay calls [`Plugin::new`] once with the plugin's `config:` (as JSON; `null` when
//! absent), then [`Plugin::on_event`] for every event in the plugin's scope, in order.

use walrelay_plugin_sdk::prelude::*;

/// The plugin's state: its configuration, read once.
struct {ty} {{
    keep_deletes: bool,
}}

impl Plugin for {ty} {{
    fn new(config: Config) -> Result<Self, String> {{
        // A misspelled key fails at startup instead of being silently ignored.
        config.deny_unknown(&["keep_deletes"])?;
        Ok({ty} {{
            keep_deletes: config.get_bool("keep_deletes")?.unwrap_or(false),
        }})
    }}

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {{
        if event.op() == Op::Delete && !self.keep_deletes {{
            // A filter: the event goes no further (its position is still confirmed).
            return Ok(Emit::Drop);
        }}
        Ok(Emit::Keep(event))
    }}
}}

walrelay_plugin_sdk::export_plugin!({ty});
"#
    );
    let readme = format!(
        r#"# {name}

A [walrelay](https://example.invalid/walrelay) plugin: drops delete events; with
`keep_deletes: true` in its `config:` it passes them too. Edit `src/lib.rs` to make it yours.

## Build

```sh
rustup target add wasm32-wasip2   # once
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/{wasm}.wasm`.

## Test

Declarative tests (`tests/*.yaml`, format in walrelay's `docs/events-format.md`) run the
component in the relay's own runtime:

```sh
walrelay plugin test --cases tests/basic.yaml --components target/wasm32-wasip2/release
```

Run it over any events file, e.g. one captured from a real database with `walrelay record`:

```sh
walrelay plugin test --plugin target/wasm32-wasip2/release/{wasm}.wasm --events events.jsonl
```

## Use it

Pin the component in the relay's configuration with its digest:

```sh
walrelay plugin digest target/wasm32-wasip2/release/{wasm}.wasm
```

```yaml
plugins:
  - name: {name}
    component: /path/to/{wasm}.wasm
    sha256: <the digest>
    config: {{keep_deletes: false}}
```

Before deploying a new version, compare it with the running one on recorded events:
`walrelay plugin diff --current walrelay.yaml --candidate walrelay.next.yaml --events events.jsonl`.
"#
    );
    let basic_yaml = format!(
        r#"# Declarative tests of {name}: walrelay plugin test --cases tests/basic.yaml --components target/wasm32-wasip2/release
component: {name}
config: null
tables:
  - {{schema: public, name: customers, columns: [{{name: id, type: int4, key: true, nullable: false}}, {{name: email, type: text}}]}}
cases:
  - name: passes inserts unchanged
    input:
      - {{op: c, table: public.customers, after: {{id: 1, email: ada@example.com}}}}
    output:
      - {{op: c, table: public.customers, after: {{id: 1, email: ada@example.com}}}}
  - name: drops deletes
    input:
      - {{op: d, table: public.customers, before: {{id: 1}}}}
      - {{op: u, table: public.customers, after: {{id: 2, email: bo@example.com}}}}
    output:
      - {{op: u, table: public.customers, after: {{id: 2, email: bo@example.com}}}}
  - name: keeps deletes when configured
    config: {{keep_deletes: true}}
    input:
      - {{op: d, table: public.customers, before: {{id: 1}}}}
    output:
      - {{op: d, table: public.customers, before: {{id: 1}}}}
  - name: refuses a misspelled key
    config: {{keep_delete: true}}
    error: "unknown configuration key `keep_delete`"
"#
    );
    vec![
        ("Cargo.toml", cargo_toml),
        ("src/lib.rs", lib_rs),
        ("README.md", readme),
        ("tests/basic.yaml", basic_yaml),
        (".gitignore", "/target\n".to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/a/b/c"), Path::new("/a/plugin-sdk")),
            "../../plugin-sdk"
        );
        assert_eq!(relative_path(Path::new("/a"), Path::new("/a/x")), "x");
    }

    #[test]
    fn names() {
        assert_eq!(type_name_for("my-filter_2"), "MyFilter2");
        assert!(check_crate_name("my-filter").is_ok());
        assert!(check_crate_name("My").is_err());
        assert!(check_crate_name("1a").is_err());
        assert!(check_crate_name("").is_err());
    }
}
