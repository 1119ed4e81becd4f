//! Command-line interface of the `fog-node` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// On-site node of the observatory hub.
#[derive(Debug, Parser)]
#[command(name = "fog-node", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of `status`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol this node with a hub using a join token (keys are made locally).
    Enroll {
        /// Hub gRPC endpoint, HOST:PORT.
        #[arg(long)]
        hub: String,
        /// Join token `ID.SECRET` printed by `obsctl sites join-token`.
        #[arg(long)]
        token: String,
        /// `sha256:<hex>` of the hub CA certificate, pinned before anything is sent.
        #[arg(long)]
        ca_hash: String,
        /// Where the key, certificate and spool live (default: `state_dir`
        /// of the configuration, i.e. `OBS_NODE__STATE_DIR` or /var/lib/fog-node).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// This node's id (default: the host name).
        #[arg(long)]
        node_id: Option<String>,
    },
    /// Run the devices, the spool and the uplink.
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print spool, uplink and certificate state.
    Status {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run the environment model in accelerated time and write a training table.
    Simulate {
        /// Mirror segments per site.
        #[arg(long, default_value_t = 18)]
        segments: u32,
        /// Simulated years of rows per site.
        #[arg(long, default_value_t = 3.0)]
        years: f64,
        /// Run seed (each site's seed is derived from it and its name).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output CSV file (one row per segment per day).
        #[arg(long)]
        out: PathBuf,
        /// Site presets, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "la_palma,dusty_desert,humid_coastal"
        )]
        sites: Vec<String>,
        /// Cap of the days_to_threshold target, days.
        #[arg(long, default_value_t = crate::simulate::DEFAULT_HORIZON_DAYS)]
        horizon_days: u32,
        /// Extra telescopes per preset with a randomised climate (`<preset>~<k>`).
        #[arg(long, default_value_t = 0)]
        climate_variants: u32,
    },
    /// Print the default configuration as TOML.
    PrintDefaultConfig,
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let cli = match cli.command {
        Command::Enroll {
            hub,
            token,
            ca_hash,
            state_dir,
            node_id,
        } => {
            return crate::commands::enroll(hub, token, ca_hash, state_dir, node_id).await;
        }
        Command::Run { config } => return crate::commands::run(config).await,
        Command::Status { config, format } => {
            return crate::commands::status(config, format == Format::Json).await;
        }
        Command::PrintDefaultConfig => return crate::commands::print_default_config(),
        command => Cli {
            log_json: cli.log_json,
            command,
        },
    };
    let name = match cli.command {
        Command::Enroll { .. } => "enroll",
        Command::Run { .. } => "run",
        Command::Status { .. } => "status",
        Command::Simulate {
            segments,
            years,
            seed,
            out,
            sites,
            horizon_days,
            climate_variants,
        } => {
            let config = crate::simulate::SimulateConfig {
                segments,
                years,
                seed,
                sites,
                horizon_days,
                climate_variants,
                out,
            };
            let summary = tokio::task::spawn_blocking(move || {
                crate::simulate::run(&config).map(|summary| (summary, config.out))
            })
            .await??;
            let (summary, out) = summary;
            for site in &summary.sites {
                tracing::info!(
                    site = %site.site,
                    seed = site.seed,
                    rows = site.rows,
                    cleanings = site.cleanings,
                    recoats = site.recoats,
                    calima_events = site.calima_events,
                    "simulated site"
                );
            }
            println!(
                "wrote {} rows to {} in {:.1} s",
                summary.rows,
                out.display(),
                summary.elapsed.as_secs_f64()
            );
            return Ok(());
        }
        Command::PrintDefaultConfig => "print-default-config",
    };
    anyhow::bail!("`fog-node {name}` is not implemented yet (issue #3)")
}
