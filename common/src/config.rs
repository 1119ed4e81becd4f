//! Layered configuration: defaults, then a TOML file, then environment
//! variables (`{PREFIX}__SECTION__KEY`), then the type's own validation.
//!
//! Environment variables win over the file so that a deployment (systemd,
//! Kubernetes) can override one value without rewriting the file.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// A configuration that can check itself after loading.
pub trait Validate {
    /// Rejects values that parse but make no sense, naming the field.
    fn validate(&self) -> Result<()>;
}

/// Loads `T` from its defaults, the optional TOML `file` and the environment
/// variables starting with `{env_prefix}__` (nested keys joined by `__`).
pub fn load<T>(env_prefix: &str, file: Option<&Path>) -> Result<T>
where
    T: Serialize + DeserializeOwned + Default + Validate,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(Error::ConfigMissing {
                path: path.to_owned(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(&format!("{env_prefix}__")).split("__"));
    let config: T = figment.extract()?;
    config.validate()?;
    Ok(config)
}

/// The defaults of `T` as commented-free TOML, for `print-default-config`.
pub fn render_default<T: Serialize + Default>() -> Result<String> {
    Ok(toml::to_string_pretty(&T::default())?)
}

#[cfg(test)]
// figment::Jail closures return figment::Error, which is large by design.
#[allow(clippy::result_large_err)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Sample {
        port: u16,
        store: Store,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Store {
        kind: String,
    }

    impl Default for Sample {
        fn default() -> Self {
            Sample {
                port: 1,
                store: Store {
                    kind: "sqlite".into(),
                },
            }
        }
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<()> {
            if self.port == 0 {
                return Err(Error::ConfigValue {
                    field: "port".into(),
                    reason: "must not be 0".into(),
                });
            }
            Ok(())
        }
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "port = 7\n[store]\nkind = \"cassandra\"\n")?;
            let loaded: Sample = load("OBS_T", Some(Path::new("c.toml"))).unwrap();
            assert_eq!(loaded.port, 7);
            assert_eq!(loaded.store.kind, "cassandra");
            jail.set_env("OBS_T__STORE__KIND", "scylla");
            let loaded: Sample = load("OBS_T", Some(Path::new("c.toml"))).unwrap();
            assert_eq!(loaded.store.kind, "scylla");
            Ok(())
        });
    }

    #[test]
    fn missing_file_and_invalid_value_name_the_problem() {
        figment::Jail::expect_with(|jail| {
            let missing = load::<Sample>("OBS_T", Some(Path::new("nope.toml"))).unwrap_err();
            assert!(missing.to_string().contains("nope.toml"), "{missing}");
            jail.create_file("bad.toml", "port = 0\n")?;
            let invalid = load::<Sample>("OBS_T", Some(Path::new("bad.toml"))).unwrap_err();
            assert!(
                invalid.to_string().contains("port: must not be 0"),
                "{invalid}"
            );
            Ok(())
        });
    }

    #[test]
    fn default_renders_as_toml() {
        let text = render_default::<Sample>().unwrap();
        assert!(text.contains("port = 1"), "{text}");
        assert!(text.contains("[store]"), "{text}");
    }
}
