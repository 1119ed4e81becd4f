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
    ///
    /// Embedded mode (rumqttd + SQLite) on 127.0.0.1 with the real `fog-node`
    /// binary next to this one; ends after the simulated days or on Ctrl-C.
    Demo {
        /// Data directory, new or empty (default: a new one under the temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Simulated days to run.
        #[arg(long, default_value_t = 30.0)]
        days: f64,
        /// Wall-clock minutes to simulate them in.
        #[arg(long, default_value_t = 4.0)]
        minutes: f64,
        /// Seconds between two fleet-health tables.
        #[arg(long, default_value_t = 5)]
        refresh_s: u64,
        /// Keep running after the simulated days, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// gRPC port (default 50051 if free, else any free port; 0 = any).
        #[arg(long)]
        grpc_port: Option<u16>,
        /// HTTP port: health, metrics, dashboard (default 8080 if free, else any; 0 = any).
        #[arg(long)]
        http_port: Option<u16>,
        /// MQTT port of the embedded broker (default 8883 if free, else any; 0 = any).
        #[arg(long)]
        mqtt_port: Option<u16>,
        /// Segment records to upload (default: manufacturing/samples/segments.csv).
        #[arg(long)]
        records: Option<PathBuf>,
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
        Command::Demo {
            data_dir,
            days,
            minutes,
            refresh_s,
            keep_running,
            grpc_port,
            http_port,
            mqtt_port,
            records,
        } => {
            let options = crate::demo::DemoOptions {
                data_dir,
                days,
                minutes,
                refresh: std::time::Duration::from_secs(refresh_s),
                keep_running,
                ports: crate::demo::PortRequest {
                    grpc: grpc_port,
                    http: http_port,
                    mqtt: mqtt_port,
                },
                records,
                log_json: cli.log_json,
                ..crate::demo::DemoOptions::new(crate::demo::Binaries::beside_current_exe()?)
            };
            crate::demo::run(options, crate::demo::shutdown_on_signals()).await?;
            Ok(())
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
