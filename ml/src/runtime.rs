//! Finding and loading the ONNX Runtime shared library (`ort` with
//! `load-dynamic`): never `ort::init()`, which panics when no library is
//! found; always `ort::init_from(path)` with a path this module chose.
//!
//! Where the library comes from, first match wins:
//! 1. an explicit path ([`RuntimeConfig::library_path`], e.g. from the hub's config);
//! 2. the environment variable [`ENV_VAR`] (`OBS_ORT_DYLIB`);
//! 3. auto-discovery: from the current directory and from the executable's
//!    directory, each ancestor `D` is tried for
//!    `D/.venv/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1`
//!    (the project venv made by `scripts/setup.sh`).
//!
//! ONNX Runtime is a process-wide singleton: the first successful load wins,
//! a later request for the same file returns the same [`Runtime`], one for a
//! different file is an error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::{Error, Result};

/// The ONNX Runtime version this build is made for (`ort` API 31).
pub const ORT_VERSION: &str = "1.31.1";
/// `major.minor` that must match.
const ORT_MAJOR_MINOR: &str = "1.31";
/// File name of the library inside the onnxruntime wheel.
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";
/// Environment variable with an explicit library path.
pub const ENV_VAR: &str = "OBS_ORT_DYLIB";

/// How to find the library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Explicit library path; `None` = [`ENV_VAR`], then auto-discovery.
    pub library_path: Option<PathBuf>,
}

/// A loaded ONNX Runtime (one per process).
#[derive(Debug)]
pub struct Runtime {
    library: PathBuf,
    version: String,
    env: ort::environment::Environment,
}

/// The runtime loaded in this process, if any.
static LOADED: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);
/// The library `ort` has loaded (it keeps the first one for the process).
static DYLIB: OnceLock<PathBuf> = OnceLock::new();

impl Runtime {
    /// Finds the library as configured (see the module docs) and loads it.
    pub fn load(config: &RuntimeConfig) -> Result<Arc<Runtime>> {
        let path = locate(config.library_path.as_deref())?;
        Self::load_from(&path)
    }

    /// [`Runtime::load`] with the default config: `OBS_ORT_DYLIB`, then discovery.
    pub fn discover() -> Result<Arc<Runtime>> {
        Self::load(&RuntimeConfig::default())
    }

    /// Loads the library at `path` (or returns the runtime already loaded from it).
    pub fn load_from(path: &Path) -> Result<Arc<Runtime>> {
        let path = std::fs::canonicalize(path).map_err(|_| Error::RuntimeNotFound {
            expected: LIBRARY_FILE,
            searched: vec![path.to_path_buf()],
        })?;
        let mut loaded = LOADED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(runtime) = loaded.as_ref() {
            return if runtime.library == path {
                Ok(Arc::clone(runtime))
            } else {
                Err(Error::RuntimeAlreadyLoaded {
                    loaded: runtime.library.clone(),
                    requested: path,
                })
            };
        }
        if let Some(previous) = DYLIB.get().filter(|p| **p != path) {
            return Err(Error::RuntimeAlreadyLoaded {
                loaded: previous.clone(),
                requested: path,
            });
        }
        if let Some(found) = file_name_version(&path).filter(|v| !version_matches(v)) {
            return Err(Error::RuntimeVersion {
                path,
                found,
                expected: ORT_VERSION,
            });
        }
        let builder = ort::init_from(&path).map_err(|e| match e {
            ort::LoadDynamicError::BadVersion { version_str, .. } => Error::RuntimeVersion {
                path: path.clone(),
                found: version_str,
                expected: ORT_VERSION,
            },
            other => Error::RuntimeLoad {
                path: path.clone(),
                message: other.to_string(),
            },
        })?;
        let _ = DYLIB.set(path.clone());
        // ort has refused anything older than API 31. The exact version comes
        // from the build info when it names a release branch (only now is it
        // safe to ask the library), else from the file name.
        let version = match reported_version(ort::info()).or_else(|| file_name_version(&path)) {
            Some(v) if !version_matches(&v) => {
                return Err(Error::RuntimeVersion {
                    path,
                    found: v,
                    expected: ORT_VERSION,
                });
            }
            Some(v) => v,
            None => format!("unknown (>= {ORT_MAJOR_MINOR}, ort API check)"),
        };
        let env = builder
            .with_name("obs-ml")
            .with_telemetry(false)
            .build()
            .map_err(|e| Error::RuntimeLoad {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let runtime = Arc::new(Runtime {
            library: path,
            version,
            env,
        });
        tracing::info!(library = %runtime.library.display(), version = %runtime.version, "loaded onnx runtime");
        *loaded = Some(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// The library file in use.
    pub fn library_path(&self) -> &Path {
        &self.library
    }

    /// The library's version, e.g. `1.31.1` (from its build info when that
    /// names a release, else from its file name).
    pub fn version(&self) -> &str {
        &self.version
    }

    pub(crate) fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }
}

/// `x.y.z` from a file name `libonnxruntime.so.x.y.z`, if it has one.
fn file_name_version(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.strip_prefix("libonnxruntime.so.")?;
    (!version.is_empty()).then(|| version.to_owned())
}

fn version_matches(version: &str) -> bool {
    version == ORT_MAJOR_MINOR
        || version
            .strip_prefix(ORT_MAJOR_MINOR)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The version in ONNX Runtime's build info when it names a release branch
/// (`git-branch=rel-1.31.1, ...`); the PyPI wheel's says `git-branch=HEAD`.
fn reported_version(info: &str) -> Option<String> {
    info.split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("git-branch=rel-"))
        .map(str::to_owned)
}

/// Picks the library path: explicit, then [`ENV_VAR`], then discovery.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return existing(path);
    }
    if let Some(path) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        return existing(Path::new(&path));
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        starts.push(dir);
    }
    discover_from(&starts)
}

/// Auto-discovery from the given start directories (each and its ancestors).
fn discover_from(starts: &[PathBuf]) -> Result<PathBuf> {
    let mut searched = Vec::new();
    let mut wrong_version: Option<(PathBuf, String)> = None;
    for start in starts {
        for dir in start.ancestors() {
            let lib = dir.join(".venv").join("lib");
            let pattern = lib
                .join("python3.*/site-packages/onnxruntime/capi")
                .join(LIBRARY_FILE);
            if searched.contains(&pattern) {
                continue;
            }
            searched.push(pattern);
            if let Some(found) = search_venv_lib(&lib, &mut wrong_version) {
                return Ok(found);
            }
        }
    }
    if let Some((path, found)) = wrong_version {
        return Err(Error::RuntimeVersion {
            path,
            found,
            expected: ORT_VERSION,
        });
    }
    Err(Error::RuntimeNotFound {
        expected: LIBRARY_FILE,
        searched,
    })
}

fn existing(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(Error::RuntimeNotFound {
            expected: LIBRARY_FILE,
            searched: vec![path.to_path_buf()],
        })
    }
}

/// Looks in `lib/python3.*/site-packages/onnxruntime/capi/`; remembers a
/// library of another version for the error message.
fn search_venv_lib(lib: &Path, wrong_version: &mut Option<(PathBuf, String)>) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    for python in pythons {
        let capi = python.join("site-packages/onnxruntime/capi");
        let wanted = capi.join(LIBRARY_FILE);
        if wanted.is_file() {
            return Some(wanted);
        }
        if wrong_version.is_none()
            && let Ok(entries) = std::fs::read_dir(&capi)
        {
            *wrong_version = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find_map(|p| file_name_version(&p).map(|v| (p, v)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_file_names_and_build_info() {
        assert_eq!(
            file_name_version(Path::new("/x/libonnxruntime.so.1.31.1")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(file_name_version(Path::new("/x/libonnxruntime.so")), None);
        assert!(version_matches("1.31.1"));
        assert!(version_matches("1.31.0"));
        assert!(!version_matches("1.3.1"));
        assert!(!version_matches("1.310.0"));
        assert!(!version_matches("1.30.0"));
        assert_eq!(
            reported_version("ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc").as_deref(),
            Some("1.31.1")
        );
        assert_eq!(
            reported_version("ORT Build Info: git-branch=HEAD, git-commit-id=abc"),
            None
        );
    }

    #[test]
    fn discovery_without_a_venv_names_every_place_searched() {
        let tmp = tempfile::tempdir().unwrap();
        let start = tmp.path().join("a/b");
        std::fs::create_dir_all(&start).unwrap();
        let err = discover_from(std::slice::from_ref(&start)).unwrap_err();
        let Error::RuntimeNotFound { searched, .. } = &err else {
            panic!("{err}");
        };
        // b, a, the temp dir and each of its ancestors up to /
        assert_eq!(searched.len(), start.ancestors().count(), "{err}");
        let msg = err.to_string();
        for dir in [&start, &tmp.path().join("a"), &tmp.path().to_path_buf()] {
            let pattern = dir.join(".venv/lib/python3.*/site-packages/onnxruntime/capi");
            assert!(msg.contains(&pattern.display().to_string()), "{msg}");
        }
        assert!(msg.contains("OBS_ORT_DYLIB"), "{msg}");
    }

    #[test]
    fn discovery_finds_a_venv_and_reports_other_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let capi = tmp
            .path()
            .join(".venv/lib/python3.12/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        let mut wrong = None;
        std::fs::write(capi.join("libonnxruntime.so.1.29.0"), b"").unwrap();
        assert_eq!(
            search_venv_lib(&tmp.path().join(".venv/lib"), &mut wrong),
            None
        );
        let (path, version) = wrong.unwrap();
        assert_eq!(version, "1.29.0");
        assert!(path.ends_with("libonnxruntime.so.1.29.0"));
        std::fs::write(capi.join(LIBRARY_FILE), b"").unwrap();
        let found = search_venv_lib(&tmp.path().join(".venv/lib"), &mut None).unwrap();
        assert!(found.ends_with(LIBRARY_FILE));
    }
}
