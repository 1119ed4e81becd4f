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
        /// Site id, `[a-z][a-z0-9]{1,31}`.
        #[arg(long)]
        site: String,
        /// Display name of the telescope.
        #[arg(long)]
        name: Option<String>,
        /// Latitude, degrees (WGS84); with --lon and --alt.
        #[arg(long, requires_all = ["lon", "alt"], allow_negative_numbers = true)]
        lat: Option<f64>,
        /// Longitude, degrees.
        #[arg(long, requires_all = ["lat", "alt"], allow_negative_numbers = true)]
        lon: Option<f64>,
        /// Altitude, metres.
        #[arg(long, requires_all = ["lat", "lon"], allow_negative_numbers = true)]
        alt: Option<f64>,
        /// Primary mirror segments (default 18).
        #[arg(long)]
        segments: Option<u32>,
        /// How long the token stays valid: 90s, 30m, 1h, 2d (at most 7d).
        #[arg(long, default_value = "1h", value_parser = crate::sites::parse_ttl)]
        ttl: std::time::Duration,
        /// Issue a token for a site that is already enrolled (or revoked).
        #[arg(long)]
        reenroll: bool,
    },
    /// List sites.
    List,
    /// Revoke a site: its batches are refused at once, its certificates stop
    /// being renewed and are listed in the hub's CRL.
    Revoke {
        site: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Upload manufacturing records from a CSV or JSON file (format:
    /// manufacturing/README.md). Atomic: one bad record stores nothing.
    Upload {
        /// `.csv`, `.json` (an array) or `.jsonl`.
        file: PathBuf,
        /// Store the valid records and report the others.
        #[arg(long)]
        partial: bool,
        /// Store a changed record as a new version (the previous one is kept).
        #[arg(long)]
        replace: bool,
        /// Ignore unknown columns / keys (a wrong unit is still an error).
        #[arg(long)]
        allow_extra: bool,
    },
    /// Show one segment's record and where it is installed.
    Show {
        serial: String,
        /// Also list the previous versions of the record.
        #[arg(long)]
        history: bool,
    },
    /// Record that a segment was installed at a site position (closing the
    /// position's previous installation and the segment's previous one).
    Install {
        #[arg(long)]
        site: String,
        /// 1-based position in the primary mirror.
        #[arg(long)]
        position: u32,
        #[arg(long)]
        serial: String,
        /// When (RFC 3339); default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Record a cleaning, recoat or inspection.
    Maintain {
        #[arg(long)]
        serial: String,
        #[arg(long, value_enum)]
        kind: MaintenanceKindArg,
        /// When (RFC 3339); default: now.
        #[arg(long)]
        at: Option<String>,
        /// Reflectivity before, percent by wavelength: `650=85.5,470=86.7`.
        #[arg(long)]
        before: Option<String>,
        /// Reflectivity after, percent by wavelength.
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        /// For a recoat: the new coating batch.
        #[arg(long)]
        coating_batch: Option<String>,
    },
    /// The whole story of one segment, across telescopes.
    Lifecycle { serial: String },
    /// Reflectivity loss per 1000 open-dome hours by coating batch,
    /// substrate or figure-error band.
    Cohorts {
        #[arg(long, value_enum, default_value = "coating-batch")]
        by: CohortBy,
        /// Only segments installed now at these sites (repeatable).
        #[arg(long)]
        site: Vec<String>,
    },
}

/// `--kind` of `segments maintain`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum MaintenanceKindArg {
    Cleaning,
    Recoat,
    Inspection,
}

/// `--by` of `segments cohorts`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CohortBy {
    CoatingBatch,
    Substrate,
    /// Bands of 2 nm RMS of surface figure error.
    FigureError,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Per-segment health across the fleet, most urgent first.
    Health {
        /// Only these sites (repeatable).
        #[arg(long)]
        site: Vec<String>,
        /// Only segments at or above: ok, watch, clean-soon, recoat.
        #[arg(long)]
        min_risk: Option<String>,
        /// Only segments of this coating batch.
        #[arg(long)]
        coating_batch: Option<String>,
        /// Run the model before answering.
        #[arg(long)]
        refresh: bool,
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
        Command::Sites { command } => crate::sites::run(&cli.connection, command, cli.format).await,
        Command::Segments { command } => {
            crate::segments::run(&cli.connection, command, cli.format).await
        }
        Command::Fleet { command } => {
            let hub = crate::client::Hub::connect(&cli.connection).await?;
            crate::fleet::run(&hub, command, cli.format).await
        }
    }
}
