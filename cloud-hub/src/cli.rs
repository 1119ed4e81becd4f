//! Command-line interface of the `cloud-hub` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The observatory hub.
#[derive(Debug, Parser)]
#[command(name = "cloud-hub", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// API token roles.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Role {
    Admin,
    Optics,
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the whole system on this machine: hub, three simulated telescopes, fleet health.
    Demo {
        /// Data directory (a temporary one if not given).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Administration on the hub machine.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the default configuration as TOML.
    PrintDefaultConfig,
    /// Print `sha256:<hex>` of the hub CA certificate.
    PrintCaHash {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Mint an API token with a role (printed once).
    Token {
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        name: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let (name, issue) = match cli.command {
        Command::Serve { .. } => ("serve", 4),
        Command::Demo { .. } => ("demo", 8),
        Command::Admin { .. } => ("admin token", 5),
        Command::PrintDefaultConfig => ("print-default-config", 4),
        Command::PrintCaHash { .. } => ("print-ca-hash", 5),
    };
    anyhow::bail!("`cloud-hub {name}` is not implemented yet (issue #{issue})")
}
