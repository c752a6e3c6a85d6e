//! The `walrelay` command.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WALRELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
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
