//! The `walrelay` command.
mod authoring;

/// Per-event allocations are many and small, made on one thread and freed on another: mimalloc
/// serves them in a fraction of glibc's time (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

/// PostgreSQL change data capture to Kafka, in Debezium's format, through sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "walrelay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay: snapshot (when configured) and stream changes until stopped (SIGINT/SIGTERM).
    Run {
        /// The YAML configuration file.
        #[arg(short, long, env = "WALRELAY_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file: report every problem, with file:line, and exit non-zero if any.
    Check {
        /// The YAML configuration file.
        #[arg(short, long, env = "WALRELAY_CONFIG")]
        config: PathBuf,
    },
    /// Print a topic's records from the beginning, one JSON line each: partition, offset, key, value.
    Tail {
        /// Bootstrap brokers, comma-separated host:port.
        #[arg(short, long, env = "WALRELAY_KAFKA_BROKERS")]
        brokers: String,
        /// The topic, e.g. inventory.public.products.
        #[arg(short, long)]
        topic: String,
        /// Stop after this many records.
        #[arg(short = 'n', long)]
        count: Option<usize>,
        /// Stop after this many seconds without a new record (default: keep following).
        #[arg(long)]
        idle_secs: Option<u64>,
        /// Give up if the topic does not exist after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Record change events from the configured slot into an events file (walrelay-events/v1),
    /// for `walrelay plugin test` and `walrelay plugin diff`. Nothing is confirmed: the slot does
    /// not advance, so recording again yields the same events (a new slot's snapshot rows, op
    /// `r`, are recorded too; the snapshot is then taken again by the next record or run).
    Record {
        /// The relay's YAML configuration (source and state_dir are used; plugins are not run).
        #[arg(short, long, env = "WALRELAY_CONFIG")]
        config: PathBuf,
        /// The events file to write.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Stop after this many seconds without a new event (default: until the limit, SIGINT or
        /// SIGTERM).
        #[arg(long)]
        idle_secs: Option<u64>,
    },
    /// Ask the running relay to read tables again while it streams (an incremental snapshot):
    /// writes an execute-snapshot signal into source.postgres.incremental_snapshots.signal_table.
    Snapshot {
        /// The relay's YAML configuration.
        #[arg(short, long, env = "WALRELAY_CONFIG")]
        config: PathBuf,
        /// The tables to read, `schema.table` (a bare name means `public.name`).
        #[arg(required = true)]
        tables: Vec<String>,
    },
    /// Plugin components: keys, signatures and digests for `plugin_policy:` and `sha256:`.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Generate a signing key pair: NAME.key (secret, mode 0600) and NAME.pub (`ed25519:...`, for
    /// plugin_policy.trusted_keys). Never overwrites.
    Keygen {
        /// The key pair's name, a path without extension: writes NAME.key and NAME.pub.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a component with a secret key: writes COMPONENT.sig (or --out).
    Sign {
        /// The secret key file written by `walrelay plugin keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signature (default: the component's path with `.sig` appended).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The component (`.wasm`).
        component: PathBuf,
    },
    /// Check a component's signature against trusted keys; exits non-zero with the reason.
    Verify {
        /// A trusted public key, `ed25519:<base64>` (repeat for several).
        #[arg(long = "trusted-key", required = true, value_name = "ed25519:BASE64")]
        trusted_keys: Vec<String>,
        /// The signature file (default: the component's path with `.sig` appended).
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The component (`.wasm`).
        component: PathBuf,
    },
    /// Print a component's SHA-256, for the plugin's `sha256:` in the configuration.
    Digest {
        /// The component (`.wasm`).
        component: PathBuf,
    },
    /// Run a component over an events file and print its output as events-file lines, or run
    /// declarative test files (`--cases`). An author tool: the component needs no pin
    /// (`sha256:`) and no signature; it runs with no grants and `on_error: fail`.
    Test {
        /// The component (`.wasm`) to run over --events.
        #[arg(long, requires = "events", conflicts_with = "cases")]
        plugin: Option<PathBuf>,
        /// The events file (walrelay-events/v1 JSON Lines, e.g. from `walrelay record`).
        #[arg(long, requires = "plugin")]
        events: Option<PathBuf>,
        /// A YAML or JSON file holding the plugin's `config` value (default: null).
        #[arg(long, requires = "plugin")]
        config: Option<PathBuf>,
        /// The topic prefix: default topics are PREFIX.schema.table.
        #[arg(long, default_value = declarative_prefix(), requires = "plugin")]
        prefix: String,
        /// Declarative test files (plugins/NAME/tests/*.yaml). Prints `ok`/`FAILED` per case
        /// and exits non-zero on a failure.
        #[arg(long, num_args = 1.., required_unless_present = "plugin")]
        cases: Vec<PathBuf>,
        /// Where the components named by test files are, as NAME.wasm (default:
        /// $CARGO_TARGET_DIR/plugins, else target/plugins).
        #[arg(long, requires = "cases")]
        components: Option<PathBuf>,
    },
    /// Create a plugin crate: Cargo.toml, src/lib.rs (a small filter), README.md and
    /// tests/basic.yaml. Refuses a directory that exists and is not empty.
    New {
        /// The plugin's (crate's) name.
        name: String,
        /// The crate's directory (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the plugin chains of two configurations over the same events (each event alone, in
    /// order) and report every event whose outputs differ. Pins and signatures are enforced as
    /// in production. Exits 0 when none differ, 1 otherwise.
    Diff {
        /// The configuration in use.
        #[arg(long)]
        current: PathBuf,
        /// The configuration to compare with it.
        #[arg(long)]
        candidate: PathBuf,
        /// The events file (walrelay-events/v1).
        #[arg(long)]
        events: PathBuf,
    },
    /// Print what a component is: the walrelay interface version it exports, what it imports
    /// (capabilities it may ask for), its SHA-256 and who signed it.
    Inspect {
        /// The signature file (default: the component's path with `.sig` appended).
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The component (`.wasm`).
        component: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Author tools print their results: only warnings and errors go to the log by default.
    let default_log = match &cli.command {
        Command::Plugin {
            command: PluginCommand::Test { .. } | PluginCommand::Diff { .. },
        } => "warn",
        _ => "info,rdkafka=warn",
    };
    // Colours and the snapshot's progress bar only for a person at a terminal: not in files,
    // journald or a collector.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WALRELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(walrelay::progress::StderrBelowBar)
        .with_ansi(terminal)
        .init();
    if terminal && matches!(cli.command, Command::Run { .. }) {
        walrelay::progress::spawn_snapshot_bar();
    }
    let result = match cli.command {
        Command::Record {
            config,
            out,
            limit,
            idle_secs,
        } => authoring::record(
            &config,
            &out,
            limit,
            idle_secs.map(std::time::Duration::from_secs),
        ),
        Command::Plugin {
            command:
                command @ (PluginCommand::Test { .. }
                | PluginCommand::New { .. }
                | PluginCommand::Diff { .. }),
        } => author_command(command),
        command => real_main(Cli { command }).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { config } => {
            let cfg = walrelay::config::load(&config)?;
            walrelay::pipeline::RelaySettings::from_config(&cfg)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Tail {
            brokers,
            topic,
            count,
            idle_secs,
            wait_secs,
        } => {
            let opts = walrelay::tail::TailOptions {
                brokers,
                topic,
                count,
                idle: idle_secs.map(std::time::Duration::from_secs),
                wait_for_topic: std::time::Duration::from_secs(wait_secs),
            };
            walrelay::tail::tail(&opts, &mut std::io::stdout().lock())?;
            Ok(())
        }
        Command::Plugin { command } => plugin_command(command),
        Command::Record { .. } => unreachable!("handled in main"),
        Command::Snapshot { config, tables } => {
            let cfg = walrelay::config::load(&config)?;
            let settings = walrelay::pipeline::RelaySettings::from_config(&cfg)
                .with_context(|| format!("{}", config.display()))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let id = runtime.block_on(walrelay::pg::capture::signal_incremental_snapshot(
                &settings.source,
                &tables,
            ))?;
            println!(
                "signal {id} written: the relay reads {} incrementally while it streams",
                tables.join(", ")
            );
            Ok(())
        }
        Command::Run { config } => {
            let cfg = walrelay::config::load(&config)?;
            let settings = walrelay::pipeline::RelaySettings::from_config(&cfg)
                .with_context(|| format!("{}", config.display()))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("walrelay")
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async move {
                let (stop_tx, stop_rx) = watch::channel(false);
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!(
                        "stopping: draining in-flight records and confirming their position"
                    );
                    let _ = stop_tx.send(true);
                });
                walrelay::pipeline::run(settings, stop_rx).await
            })
        }
    }
}

fn declarative_prefix() -> &'static str {
    walrelay::plugin::declarative::TEST_PREFIX
}

fn author_command(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Test {
            plugin: Some(plugin),
            events: Some(events),
            config,
            prefix,
            ..
        } => authoring::test_events(&plugin, &events, config.as_deref(), &prefix),
        PluginCommand::Test {
            cases, components, ..
        } => authoring::test_cases(&cases, components.as_deref()),
        PluginCommand::New { name, dir } => authoring::new_plugin(&name, dir.as_deref()),
        PluginCommand::Diff {
            current,
            candidate,
            events,
        } => authoring::diff(&current, &candidate, &events),
        _ => unreachable!("not an author command"),
    }
}

fn plugin_command(command: PluginCommand) -> anyhow::Result<()> {
    use walrelay::plugin::signing;
    match command {
        PluginCommand::Keygen { out } => {
            let (secret, public, key) = signing::write_key_pair(&out)?;
            println!(
                "wrote {} (secret: keep it private) and {}",
                secret.display(),
                public.display()
            );
            println!("public key, for plugin_policy.trusted_keys:");
            println!("{}", signing::format_public_key(&key));
            Ok(())
        }
        PluginCommand::Sign {
            key,
            out,
            component,
        } => {
            let out = out.unwrap_or_else(|| signing::default_signature_path(&component));
            let signature = signing::sign_file(&key, &component, &out)?;
            println!(
                "wrote {}: sha256 {} signed by {}",
                out.display(),
                signature.digest,
                signing::format_public_key(&signature.key)
            );
            Ok(())
        }
        PluginCommand::Verify {
            trusted_keys,
            signature,
            component,
        } => {
            let policy =
                signing::TrustPolicy::from_text_keys(true, &trusted_keys).map_err(|(i, err)| {
                    anyhow::anyhow!(
                        "--trusted-key `{}` is not a public key: {err}. Expected `ed25519:` then \
                         the base64 of 32 bytes, as in the NAME.pub written by `walrelay plugin \
                         keygen`",
                        trusted_keys[i]
                    )
                })?;
            let signature =
                signature.unwrap_or_else(|| signing::default_signature_path(&component));
            let admission = signing::verify(&policy, &component, &signature)?;
            println!(
                "{}: ok: sha256 {} signed by {}",
                component.display(),
                admission.digest,
                admission.signer.as_deref().unwrap_or("nobody")
            );
            Ok(())
        }
        PluginCommand::Digest { component } => {
            println!("{}", signing::sha256_file(&component)?);
            Ok(())
        }
        PluginCommand::Inspect {
            signature,
            component,
        } => {
            use walrelay::plugin::runtime::{PluginRuntime, SUPPORTED_INTERFACES};
            let digest = signing::sha256_file(&component)?;
            let runtime = PluginRuntime::new()?;
            let wasm = wasmtime::component::Component::from_file(runtime.engine(), &component)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: not a WebAssembly component: {e:#}",
                        component.display()
                    )
                })?;
            let shape = walrelay::plugin::runtime::Shape::of(runtime.engine(), &wasm);
            let interface = shape
                .exports
                .iter()
                .find(|e| e.starts_with("walrelay:plugin/"));
            println!("component: {}", component.display());
            println!("sha256:    {digest}");
            match interface {
                Some(i) if SUPPORTED_INTERFACES.contains(&i.as_str()) => {
                    println!("interface: {i} (supported)")
                }
                Some(i) => println!(
                    "interface: {i} (NOT supported; this relay runs {})",
                    SUPPORTED_INTERFACES.join(", ")
                ),
                None => println!("interface: none (not a walrelay plugin)"),
            }
            println!("world:     walrelay:plugin/plugin");
            println!(
                "exports:   {}",
                shape.exports.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            println!("imports:");
            for i in &shape.imports {
                println!("  {i}");
            }
            let signature =
                signature.unwrap_or_else(|| signing::default_signature_path(&component));
            if signature.exists() {
                let admission =
                    signing::verify(&signing::TrustPolicy::default(), &component, &signature)?;
                println!(
                    "signer:    {} ({})",
                    admission.signer.as_deref().unwrap_or("nobody"),
                    signature.display()
                );
            } else {
                println!("signer:    unsigned (no {})", signature.display());
            }
            Ok(())
        }
        PluginCommand::Test { .. } | PluginCommand::New { .. } | PluginCommand::Diff { .. } => {
            unreachable!("handled by author_command")
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
