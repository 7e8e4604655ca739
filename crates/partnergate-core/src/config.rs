//! Configuration: `partnergate.toml` in the home directory, then `PARTNERGATE_*` overrides.
//!
//! Every path in the file is relative to the home directory, so a whole installation
//! (config, certificates, data) moves as one folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the configuration file inside the home directory.
pub const CONFIG_FILE: &str = "partnergate.toml";

/// Everything `serve` and the other commands read from `partnergate.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the mutual-TLS API.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP `/healthz` and `/metrics` listener.
    #[serde(default = "default_health_listen")]
    pub health_listen: SocketAddr,
    /// Folder of the PKI: CA, server and client certificates, revocation list.
    #[serde(default = "default_certs_dir")]
    pub certs_dir: PathBuf,
    /// Folder of the database and the secret keys.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Folder of `agreement.toml` and its compiled casbin files.
    #[serde(default = "default_policy_dir")]
    pub policy_dir: PathBuf,
    /// `sqlite:PATH` (relative to the home folder) or `postgres://USER@HOST/DB`. Absent: the
    /// SQLite file `partnergate.db` in the data folder. Keep a password out of this file: use
    /// `PARTNERGATE_DATABASE_URL`, or PostgreSQL's own `PGPASSWORD`/`~/.pgpass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `text` or `json` log lines.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Audit log tuning.
    #[serde(default)]
    pub audit: AuditConfig,
    /// How many national-number look-ups each client may make.
    #[serde(default)]
    pub lookup_limit: LookupLimit,
    /// Limits on TLS handshakes in progress on the API listener.
    #[serde(default)]
    pub tls: TlsConfig,
    /// When `serve` purges expired fields by itself.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
}

/// A token bucket per client certificate for `POST /v1/lookup`: `burst` look-ups at once, then
/// `per_minute` on average. A duplicate check is one look-up per new referral; enumerating
/// national numbers needs thousands.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LookupLimit {
    /// Sustained rate.
    #[serde(default = "default_lookup_per_minute")]
    pub per_minute: u32,
    /// Bucket size: how many look-ups may come at once.
    #[serde(default = "default_lookup_burst")]
    pub burst: u32,
}

impl Default for LookupLimit {
    fn default() -> Self {
        Self {
            per_minute: default_lookup_per_minute(),
            burst: default_lookup_burst(),
        }
    }
}

fn default_lookup_per_minute() -> u32 {
    60
}
fn default_lookup_burst() -> u32 {
    120
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Audit log settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Sign a checkpoint after this many records.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Sign a checkpoint at least this often (seconds) while records arrive.
    #[serde(default = "default_checkpoint_seconds")]
    pub checkpoint_seconds: u64,
    /// The most records one group commit takes.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: default_checkpoint_every(),
            checkpoint_seconds: default_checkpoint_seconds(),
            max_batch: default_max_batch(),
        }
    }
}

/// Limits on TLS handshakes in progress (`[tls]` in `partnergate.toml`). They keep clients
/// that connect and never finish a handshake from holding the slots real partners need.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Seconds a new connection gets to send its whole ClientHello.
    #[serde(default = "default_client_hello_timeout")]
    pub client_hello_timeout_secs: u64,
    /// Seconds a new connection gets to finish the whole handshake (ClientHello included).
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// The most handshakes in progress at once; connections beyond it are closed at once.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// The most handshakes in progress from one source address (IPv4 address or IPv6 /64).
    #[serde(default = "default_max_handshakes_per_ip")]
    pub max_handshakes_per_ip: usize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            client_hello_timeout_secs: default_client_hello_timeout(),
            handshake_timeout_secs: default_handshake_timeout(),
            max_handshakes: default_max_handshakes(),
            max_handshakes_per_ip: default_max_handshakes_per_ip(),
        }
    }
}

impl TlsConfig {
    /// Refuses limits that would lock every client out or never time out.
    fn validate(&self) -> Result<(), String> {
        if self.client_hello_timeout_secs == 0 || self.handshake_timeout_secs == 0 {
            return Err("tls timeouts must be at least 1 second".into());
        }
        if self.client_hello_timeout_secs > self.handshake_timeout_secs {
            return Err(
                "tls.client_hello_timeout_secs cannot exceed tls.handshake_timeout_secs".into(),
            );
        }
        if self.max_handshakes == 0 || self.max_handshakes_per_ip == 0 {
            return Err(
                "tls.max_handshakes and tls.max_handshakes_per_ip must be at least 1".into(),
            );
        }
        Ok(())
    }
}

fn default_client_hello_timeout() -> u64 {
    3
}
fn default_handshake_timeout() -> u64 {
    5
}
fn default_max_handshakes() -> usize {
    256
}
fn default_max_handshakes_per_ip() -> usize {
    32
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8443".parse().expect("literal address")
}
fn default_health_listen() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("literal address")
}
fn default_certs_dir() -> PathBuf {
    "certs".into()
}
fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_policy_dir() -> PathBuf {
    "policies".into()
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_seconds() -> u64 {
    30
}
fn default_max_batch() -> usize {
    4096
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// An environment override does not parse.
    #[error("invalid value in {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A loaded configuration bound to its home directory.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The home directory every relative path is resolved against.
    pub home: PathBuf,
    /// The configuration as read and overridden.
    pub config: Config,
}

impl Settings {
    /// Reads `home/partnergate.toml` (defaults when it is absent), then applies the
    /// `PARTNERGATE_LISTEN`, `PARTNERGATE_HEALTH_LISTEN`, `PARTNERGATE_LOG_FORMAT`,
    /// `PARTNERGATE_CERTS_DIR`, `PARTNERGATE_DATA_DIR`, `PARTNERGATE_POLICY_DIR`,
    /// `PARTNERGATE_DATABASE_URL`,
    /// `PARTNERGATE_LOOKUP_PER_MINUTE` and `PARTNERGATE_LOOKUP_BURST` overrides.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.message().to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        apply_env(&mut config)?;
        if let Some(url) = &config.database_url
            && !is_postgres_url(url)
            && sqlite_path(url).is_none()
        {
            return Err(ConfigError::Parse {
                path,
                message: "database_url must start with sqlite: or postgres://".into(),
            });
        }
        config
            .tls
            .validate()
            .map_err(|message| ConfigError::Parse {
                path: path.clone(),
                message,
            })?;
        Ok(Self {
            home: home.to_path_buf(),
            config,
        })
    }

    /// Resolves a configured path against the home directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.home.join(p)
        }
    }

    /// The certificate folder.
    pub fn certs_dir(&self) -> PathBuf {
        self.path(&self.config.certs_dir)
    }
    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.path(&self.config.data_dir)
    }
    /// The policy folder.
    pub fn policy_dir(&self) -> PathBuf {
        self.path(&self.config.policy_dir)
    }
    /// The default SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir().join("partnergate.db")
    }
    /// The database `database_url` names (the default SQLite file when it is absent).
    pub fn database(&self) -> crate::store::Database {
        // `load` has checked the URL, so every branch here is one it accepts.
        match self.config.database_url.as_deref() {
            Some(url) if is_postgres_url(url) => crate::store::Database::Postgres(url.to_string()),
            Some(url) => match sqlite_path(url).filter(|p| !p.as_os_str().is_empty()) {
                Some(p) => crate::store::Database::Sqlite(self.path(&p)),
                None => crate::store::Database::Sqlite(self.database_path()),
            },
            None => crate::store::Database::Sqlite(self.database_path()),
        }
    }
    /// The master keyring file.
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir().join("master.key")
    }
    /// The Ed25519 key that signs audit checkpoints.
    pub fn audit_signing_key_path(&self) -> PathBuf {
        self.data_dir().join("audit-signing.key")
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The path of a `sqlite:` URL (`sqlite:data/x.db`, `sqlite://data/x.db`), empty for `sqlite:`.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    Some(PathBuf::from(rest.strip_prefix("//").unwrap_or(rest)))
}

fn apply_env(config: &mut Config) -> Result<(), ConfigError> {
    fn var(name: &'static str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn addr(name: &'static str, v: String) -> Result<SocketAddr, ConfigError> {
        v.parse().map_err(|_| ConfigError::Env {
            var: name,
            message: "expected an address like 127.0.0.1:8443".into(),
        })
    }
    if let Some(v) = var("PARTNERGATE_LISTEN") {
        config.listen = addr("PARTNERGATE_LISTEN", v)?;
    }
    if let Some(v) = var("PARTNERGATE_HEALTH_LISTEN") {
        config.health_listen = addr("PARTNERGATE_HEALTH_LISTEN", v)?;
    }
    if let Some(v) = var("PARTNERGATE_LOG_FORMAT") {
        config.log_format = match v.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(ConfigError::Env {
                    var: "PARTNERGATE_LOG_FORMAT",
                    message: "expected text or json".into(),
                });
            }
        };
    }
    if let Some(v) = var("PARTNERGATE_CERTS_DIR") {
        config.certs_dir = v.into();
    }
    if let Some(v) = var("PARTNERGATE_DATA_DIR") {
        config.data_dir = v.into();
    }
    if let Some(v) = var("PARTNERGATE_POLICY_DIR") {
        config.policy_dir = v.into();
    }
    if let Some(v) = var("PARTNERGATE_DATABASE_URL") {
        config.database_url = Some(v);
    }
    let count = |name: &'static str, v: String| {
        v.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ConfigError::Env {
                var: name,
                message: "expected a whole number above 0".into(),
            })
    };
    if let Some(v) = var("PARTNERGATE_LOOKUP_PER_MINUTE") {
        config.lookup_limit.per_minute = count("PARTNERGATE_LOOKUP_PER_MINUTE", v)?;
    }
    if let Some(v) = var("PARTNERGATE_LOOKUP_BURST") {
        config.lookup_limit.burst = count("PARTNERGATE_LOOKUP_BURST", v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_with(url: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("database_url = {url:?}\n"),
        )
        .unwrap();
        let s = Settings::load(dir.path());
        drop(dir);
        s
    }

    #[test]
    fn database_url_names_sqlite_relative_to_home_or_postgres_and_nothing_else() {
        use crate::store::Database;
        let s = settings_with("sqlite:db/gw.db").unwrap();
        assert!(matches!(s.database(), Database::Sqlite(p) if p == s.home.join("db/gw.db")));
        let s = settings_with("sqlite:").unwrap();
        assert!(matches!(s.database(), Database::Sqlite(p) if p == s.database_path()));
        let s = settings_with("postgres://gw:secret@db.internal:5432/partnergate").unwrap();
        let db = s.database();
        assert!(matches!(db, Database::Postgres(_)));
        // Messages name the server, never the password.
        assert_eq!(db.describe(), "postgres://db.internal:5432/partnergate");
        assert!(!format!("{db:?}").contains("secret"));
        assert!(settings_with("mysql://db/x").is_err());
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.health_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(
            c.lookup_limit,
            LookupLimit {
                per_minute: 60,
                burst: 120
            }
        );
        assert_eq!(c.tls.client_hello_timeout_secs, 3);
        assert_eq!(c.tls.handshake_timeout_secs, 5);
        assert_eq!(c.tls.max_handshakes, 256);
        assert_eq!(c.tls.max_handshakes_per_ip, 32);
    }

    #[test]
    fn handshake_limits_that_lock_everyone_out_are_refused() {
        let c: Config = toml::from_str("[tls]\nmax_handshakes_per_ip = 0").unwrap();
        assert!(c.tls.validate().is_err());
        let c: Config = toml::from_str("[tls]\nclient_hello_timeout_secs = 9").unwrap();
        assert!(
            c.tls.validate().is_err(),
            "hello timeout above the handshake timeout"
        );
        assert!(Config::default().tls.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"127.0.0.1:1\"").is_err());
    }
}
