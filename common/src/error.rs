//! Errors of the shared helpers.

use std::path::PathBuf;

/// Result of the shared helpers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the shared helpers; every variant names its input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid site id {site:?}: {reason}")]
    InvalidSiteId { site: String, reason: &'static str },
    #[error("config file {path} does not exist")]
    ConfigMissing { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Config(Box<figment::Error>),
    #[error("invalid configuration: {field}: {reason}")]
    ConfigValue { field: String, reason: String },
    #[error("could not render the default configuration: {0}")]
    RenderConfig(#[from] toml::ser::Error),
    #[error("could not set up logging: {0}")]
    Logging(String),
}

impl From<figment::Error> for Error {
    fn from(error: figment::Error) -> Self {
        Error::Config(Box::new(error))
    }
}
