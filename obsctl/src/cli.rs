//! Command-line interface of `obsctl`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operator CLI of the observatory hub.
#[derive(Debug, Parser)]
#[command(name = "obsctl", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach and authenticate to the hub.
#[derive(Debug, Args)]
pub struct Connection {
    /// Hub gRPC endpoint HOST:PORT.
    #[arg(
        long,
        env = "OBS_HUB",
        global = true,
        default_value = "127.0.0.1:50051"
    )]
    pub hub: String,
    /// API bearer token.
    #[arg(long, env = "OBS_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Pin the hub CA by `sha256:<hex>`.
    #[arg(long, env = "OBS_CA_HASH", global = true)]
    pub ca_hash: Option<String>,
    /// Trust this CA certificate file (PEM).
    #[arg(long, env = "OBS_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Telescope sites: join tokens, listing, revocation.
    Sites {
        #[command(subcommand)]
        command: SitesCommand,
    },
    /// Mirror segment records, installations, maintenance, lifecycles.
    Segments {
        #[command(subcommand)]
        command: SegmentsCommand,
    },
    /// Fleet-wide mirror health.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Stored telemetry and ingest counters.
    Telemetry {
        #[command(subcommand)]
        command: TelemetryCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Create a join token and print the line to run on the telescope.
    JoinToken {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        reenroll: bool,
    },
    /// List sites.
    List,
    /// Revoke a site.
    Revoke {
        site: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Upload manufacturing records from a CSV or JSON file.
    Upload {
        file: PathBuf,
        #[arg(long)]
        partial: bool,
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        allow_extra: bool,
    },
    /// Show one segment's record.
    Show { serial: String },
    /// Record that a segment was installed at a site position.
    Install {
        #[arg(long)]
        site: String,
        #[arg(long)]
        position: u32,
        #[arg(long)]
        serial: String,
    },
    /// Record a cleaning, recoat or inspection.
    Maintain {
        #[arg(long)]
        serial: String,
        #[arg(long)]
        kind: String,
    },
    /// The whole story of one segment.
    Lifecycle { serial: String },
    /// Reflectivity loss by coating batch, substrate or figure-error band.
    Cohorts {
        #[arg(long, default_value = "coating-batch")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Per-segment health across the fleet, most urgent first.
    Health {
        #[arg(long)]
        site: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Raw samples or rollups of one attribute.
    Query {
        #[arg(long)]
        site: String,
        /// Tango-style device, e.g. `weather/station/1`.
        #[arg(long)]
        device: String,
        #[arg(long)]
        attribute: String,
        /// Start (RFC 3339); default: a day before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339); default: just after the site's latest sample.
        #[arg(long)]
        to: Option<String>,
        /// raw, 1m or 1h.
        #[arg(long, default_value = "raw")]
        resolution: String,
        /// Most points (0 = the hub's default).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Ingest counters per site.
    Stats {
        /// Only these sites (repeatable).
        #[arg(long)]
        site: Vec<String>,
    },
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Telemetry { command } => {
            let hub = crate::client::Hub::connect(&cli.connection).await?;
            crate::telemetry::run(&hub, command, cli.format).await
        }
        Command::Sites { .. } => not_built("sites", 5),
        Command::Segments { .. } => not_built("segments", 6),
        Command::Fleet { .. } => not_built("fleet", 7),
    }
}

fn not_built(name: &str, issue: u32) -> anyhow::Result<()> {
    anyhow::bail!("`obsctl {name}` is not implemented yet (issue #{issue})")
}
