//! Connection settings: flags and environment (parsed by clap) over the config file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use realtime_client::{Client, RetryPolicy};
use serde::Deserialize;

use crate::cli::GlobalArgs;

/// The server the CLI talks to when nothing says otherwise (the reference server's default).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The config file's keys; all optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    url: Option<String>,
    api_key: Option<String>,
    admin_secret: Option<String>,
}

/// A config file the CLI cannot use: exit code 2, as every settings mistake.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    /// `--config` (or `REALTIME_CLI_CONFIG`) names a file that is not there.
    #[error("config file {} does not exist", path.display())]
    Missing { path: PathBuf },
    /// The file is there but is not a TOML file of the known keys.
    #[error("config file {} is not usable (a TOML file with the keys url, api_key and admin_secret)", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: Box<figment::Error>,
    },
}

/// The merged settings. Secrets are never printed.
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) api_key: Option<String>,
    pub(crate) admin_secret: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("admin_secret", &self.admin_secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl Settings {
    /// Flags and environment win over the file; the file over the defaults. An explicit
    /// `--config` file must exist; the default one is read only when it does.
    pub(crate) fn load(global: &GlobalArgs, admin_secret_flag: Option<String>) -> Result<Settings, SettingsError> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => match default_config_file() {
                Some(path) if path.exists() => read_file(&path)?,
                _ => FileSettings::default(),
            },
        };
        Ok(Settings {
            url: global.url.clone().or(file.url).unwrap_or_else(|| DEFAULT_URL.to_owned()),
            api_key: global.api_key.clone().or(file.api_key),
            admin_secret: admin_secret_flag.or(file.admin_secret),
            timeout: Duration::from_secs(global.timeout.max(1)),
            retries: global.retries,
        })
    }

    /// A client for these settings; an error when no API key is set.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let Some(api_key) = &self.api_key else {
            return Err(crate::output::UsageError(
                "no API key: pass --api-key, set REALTIME_API_KEY, or put api_key in the config file \
                 (`realtime serve` prints the dev key on first start)"
                    .to_owned(),
            )
            .into());
        };
        let retry = RetryPolicy { max_retries: self.retries, ..RetryPolicy::default() };
        Ok(Client::builder(&self.url).api_key(api_key).timeout(self.timeout).retry(retry).build()?)
    }
}

fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    if !path.exists() {
        return Err(SettingsError::Missing { path: path.to_owned() });
    }
    Figment::from(Toml::file(path))
        .extract()
        .map_err(|source| SettingsError::Invalid { path: path.to_owned(), source: Box::new(source) })
}

/// `$XDG_CONFIG_HOME/realtime/config.toml`, else `~/.config/realtime/config.toml`.
fn default_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("realtime").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(config: Option<PathBuf>, url: Option<&str>) -> GlobalArgs {
        GlobalArgs { url: url.map(str::to_owned), api_key: None, config, json: false, timeout: 30, retries: 3 }
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "url = \"http://file:1\"\napi_key = \"ifr_pk_proj_file\"\n").unwrap();
        let settings = Settings::load(&global(Some(path.clone()), Some("http://flag:2")), None).unwrap();
        assert_eq!(settings.url, "http://flag:2");
        assert_eq!(settings.api_key.as_deref(), Some("ifr_pk_proj_file"));
        let settings = Settings::load(&global(Some(path), None), None).unwrap();
        assert_eq!(settings.url, "http://file:1");
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error() {
        let error = Settings::load(&global(Some(PathBuf::from("/nonexistent/realtime.toml")), None), None);
        assert!(matches!(error, Err(SettingsError::Missing { .. })));
    }

    #[test]
    fn a_config_file_with_an_unknown_key_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        let Err(error) = Settings::load(&global(Some(path.clone()), None), None) else { panic!("accepted") };
        assert!(matches!(error, SettingsError::Invalid { .. }));
        assert!(error.to_string().contains(path.to_str().unwrap()), "{error}");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let settings = Settings {
            url: DEFAULT_URL.into(),
            api_key: Some("ifr_pk_proj_verysecret".into()),
            admin_secret: Some("adminsecret".into()),
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("verysecret") && !printed.contains("adminsecret"));
    }
}
