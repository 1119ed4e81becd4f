//! Command-line interface of the `cloud-hub` binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::access::MintedToken;
use crate::config::{ENV_PREFIX, HubConfig};
use crate::server;

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

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<HubConfig> {
    Ok(obs_common::config::load::<HubConfig>(ENV_PREFIX, path)?)
}

impl From<Role> for crate::access::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => crate::access::Role::Admin,
            Role::Optics => crate::access::Role::Optics,
            Role::Viewer => crate::access::Role::Viewer,
        }
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = load_config(config.as_deref())?;
            server::run(config, obs_common::shutdown::on_signal()).await
        }
        Command::Demo { .. } => {
            anyhow::bail!("`cloud-hub demo` is not implemented yet (issue #8)")
        }
        Command::Admin {
            command: AdminCommand::Token { role, name, config },
        } => {
            let config = load_config(config.as_deref())?;
            server::prepare_data_dir(&config.data_dir)?;
            let stores = server::open_stores(&config).await?;
            let minted = MintedToken::mint(&name, role.into());
            stores.access.insert_api_token(&minted.record).await?;
            eprintln!(
                "minted {} token {:?}; it is shown only once:",
                minted.record.role.as_str(),
                name
            );
            println!("{}", minted.token);
            Ok(())
        }
        Command::PrintDefaultConfig => {
            print!("{}", obs_common::config::render_default::<HubConfig>()?);
            Ok(())
        }
        Command::PrintCaHash { config } => {
            let config = load_config(config.as_deref())?;
            let path = config
                .pki
                .ca_cert
                .clone()
                .unwrap_or_else(|| crate::pki::PkiPaths::in_data_dir(&config.data_dir).ca_cert);
            let pem = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (the CA is created when the hub first starts)",
                    path.display()
                )
            })?;
            println!("{}", obs_common::pki::ca_hash(&pem)?);
            Ok(())
        }
    }
}
