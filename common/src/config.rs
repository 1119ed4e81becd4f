//! Layered configuration: defaults, then a TOML file, then environment
//! variables (`{PREFIX}__SECTION__KEY`), then the type's own validation.
//!
//! Environment variables win over the file so that a deployment (systemd,
//! Kubernetes) can override one value without rewriting the file.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
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
    let mut overrides = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(Error::ConfigMissing {
                path: path.to_owned(),
            });
        }
        overrides = overrides.merge(Toml::file_exact(path));
    }
    overrides = overrides.merge(Env::prefixed(&format!("{env_prefix}__")).split("__"));
    let mut defaults: Value = Figment::from(Serialized::defaults(T::default())).extract()?;
    let given: Value = overrides.extract()?;
    drop_defaults_of_other_kinds(&mut defaults, &given);
    let config: T = Figment::from(Serialized::defaults(defaults))
        .merge(overrides)
        .extract()?;
    config.validate()?;
    Ok(config)
}

/// A section chosen by `kind = "..."` (a backend) takes none of the default
/// section's fields when it names another kind: `store.kind = "cassandra"`
/// must not inherit the SQLite default's `file`.
fn drop_defaults_of_other_kinds(defaults: &mut Value, given: &Value) {
    let (Value::Dict(_, defaults), Value::Dict(_, given)) = (defaults, given) else {
        return;
    };
    for (key, given) in given {
        let Some(default) = defaults.get_mut(key) else {
            continue;
        };
        let kind = |value: &Value| match value {
            Value::Dict(_, dict) => dict.get("kind").and_then(|k| k.as_str().map(str::to_owned)),
            _ => None,
        };
        match (kind(default), kind(given)) {
            (Some(a), Some(b)) if a != b => *default = Value::from(figment::value::Dict::new()),
            _ => drop_defaults_of_other_kinds(default, given),
        }
    }
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

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
    enum Backend {
        Sqlite { file: String },
        Cassandra { nodes: Vec<String> },
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct WithBackend {
        store: Backend,
    }

    impl Default for WithBackend {
        fn default() -> Self {
            WithBackend {
                store: Backend::Sqlite {
                    file: "a.db".into(),
                },
            }
        }
    }

    impl Validate for WithBackend {
        fn validate(&self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn another_kind_does_not_inherit_the_default_kinds_fields() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[store]\nkind = \"cassandra\"\nnodes = [\"n:1\"]\n",
            )?;
            let loaded: WithBackend = load("OBS_K", Some(Path::new("c.toml"))).unwrap();
            assert_eq!(
                loaded.store,
                Backend::Cassandra {
                    nodes: vec!["n:1".into()]
                }
            );
            jail.set_env("OBS_K__STORE__KIND", "sqlite");
            jail.set_env("OBS_K__STORE__FILE", "b.db");
            let loaded: WithBackend = load("OBS_K", None).unwrap();
            assert_eq!(
                loaded.store,
                Backend::Sqlite {
                    file: "b.db".into()
                }
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
