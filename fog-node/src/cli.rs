//! Command-line interface of the `fog-node` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// On-site node of the observatory hub.
#[derive(Debug, Parser)]
#[command(name = "fog-node", version, about)]
pub struct Cli {
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
        /// Where the key, certificate and spool live.
        #[arg(long)]
        state_dir: Option<PathBuf>,
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
        #[arg(long, default_value_t = 18)]
        segments: u32,
        #[arg(long, default_value_t = 3.0)]
        years: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the default configuration as TOML.
    PrintDefaultConfig,
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let name = match cli.command {
        Command::Enroll { .. } => "enroll",
        Command::Run { .. } => "run",
        Command::Status { .. } => "status",
        Command::Simulate { .. } => "simulate",
        Command::PrintDefaultConfig => "print-default-config",
    };
    anyhow::bail!("`fog-node {name}` is not implemented yet (issue #3)")
}
