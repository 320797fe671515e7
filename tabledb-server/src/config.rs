//! Server configuration: command line, environment variables, and an optional TOML file,
//! in that order of precedence, over the defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use tabledb::Durability;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read only: `GET` requests.
    Read,
    /// Everything, including schema changes.
    Admin,
}

/// An API key and its role, given as `KEY:admin` or `KEY:read`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key itself.
        f.debug_struct("ApiKey").field("role", &self.role).finish_non_exhaustive()
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;
    fn from_str(s: &str) -> Result<ApiKey, String> {
        let (key, role) =
            s.rsplit_once(':').ok_or_else(|| "an API key is given as KEY:admin or KEY:read".to_owned())?;
        let role = match role {
            "admin" => Role::Admin,
            "read" => Role::Read,
            other => return Err(format!("unknown role `{other}` for an API key; expected admin or read")),
        };
        if key.chars().count() < 8 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("an API key must be at least 8 characters without spaces".to_owned());
        }
        Ok(ApiKey { key: key.to_owned(), role })
    }
}

/// The command line. Every option can also come from the environment variable named in its
/// help, or from the TOML file given by `--config`.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "tabledb-server", version, about = "A REST server for tabledb", long_about = None)]
pub struct Cli {
    /// A TOML file with any of these settings (keys as the long options, with `_` for `-`;
    /// `api_key` takes one key or a list, `["KEY:admin", ...]`).
    #[arg(long, env = "TABLEDB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the database is kept [default: ./tabledb-data].
    #[arg(long, env = "TABLEDB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1 without API keys, 0.0.0.0 with them].
    #[arg(long, env = "TABLEDB_HOST")]
    pub host: Option<IpAddr>,
    /// Port to listen on (0 picks a free one) [default: 7878].
    #[arg(long, env = "TABLEDB_PORT")]
    pub port: Option<u16>,
    /// Ticks per second, 15 to 120 [default: 60].
    #[arg(long, env = "TABLEDB_TICKRATE")]
    pub tickrate: Option<u32>,
    /// When writes are acknowledged: tick, async or checkpoint-only [default: tick].
    #[arg(long, env = "TABLEDB_DURABILITY")]
    pub durability: Option<Durability>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "TABLEDB_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// An API key and its role, `KEY:admin` or `KEY:read`; repeat for several (comma-separated
    /// in the environment variable).
    #[arg(long = "api-key", env = "TABLEDB_API_KEYS", value_delimiter = ',')]
    pub api_keys: Vec<ApiKey>,
    /// Requests per second allowed per client (API key, or address without keys, an IPv6
    /// one by its /64 network; requests with a missing or wrong key count against their
    /// address); 0 turns the limit off [default: 1000].
    #[arg(long, env = "TABLEDB_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// How long a request may take, in milliseconds; a listing's scan stops at it too
    /// [default: 10000].
    #[arg(long, env = "TABLEDB_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Most records one page of a listing returns [default: 1000].
    #[arg(long, env = "TABLEDB_MAX_PAGE_SIZE")]
    pub max_page_size: Option<usize>,
    /// A checkpoint is written in the background every this many ticks; 0 writes none while
    /// running (the log keeps every commit; a clean shutdown writes one) [default: 10].
    #[arg(long, env = "TABLEDB_FLUSH_INTERVAL_TICKS")]
    pub flush_interval_ticks: Option<u32>,
    /// Requests waiting for the tick loop at most [default: tickrate x 100].
    #[arg(long, env = "TABLEDB_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Log filter, e.g. `info` or `tabledb=debug` [default: info].
    #[arg(long, env = "TABLEDB_LOG")]
    pub log: Option<String>,
}

/// The TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    host: Option<IpAddr>,
    port: Option<u16>,
    tickrate: Option<u32>,
    durability: Option<String>,
    max_body_bytes: Option<usize>,
    /// `api_key`, as the option is named (`--api-key`), or `api_keys`: one key or a list.
    #[serde(alias = "api_key", default, deserialize_with = "one_or_many")]
    api_keys: Option<Vec<String>>,
    rate_limit: Option<u32>,
    request_timeout_ms: Option<u64>,
    max_page_size: Option<usize>,
    flush_interval_ticks: Option<u32>,
    queue_capacity: Option<usize>,
    log: Option<String>,
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a key as a string (\"KEY:admin\"), or a list of them")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(key) => vec![key],
        OneOrMany::Many(keys) => keys,
    }))
}

/// Everything the server needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub host: IpAddr,
    pub port: u16,
    pub tick_hz: u32,
    pub durability: Durability,
    pub max_body_bytes: usize,
    pub api_keys: Vec<ApiKey>,
    /// Requests per second per client; 0: no limit.
    pub rate_limit: u32,
    pub request_timeout: Duration,
    pub max_page_size: usize,
    pub flush_interval_ticks: u32,
    pub queue_capacity: Option<usize>,
    pub log: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./tabledb-data"),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 7878,
            tick_hz: 60,
            durability: Durability::Tick,
            max_body_bytes: 1 << 20,
            api_keys: Vec::new(),
            rate_limit: 1000,
            request_timeout: Duration::from_secs(10),
            max_page_size: 1000,
            flush_interval_ticks: 10,
            queue_capacity: None,
            log: "info".to_owned(),
        }
    }
}

impl ServerConfig {
    /// Merges the command line (and environment) over the config file over the defaults.
    pub fn from_cli(cli: Cli) -> Result<ServerConfig, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let d = ServerConfig::default();
        let file_keys = file
            .api_keys
            .unwrap_or_default()
            .iter()
            .map(|k| k.parse::<ApiKey>().map_err(|e| format!("config file: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let api_keys = if cli.api_keys.is_empty() { file_keys } else { cli.api_keys };
        let durability = match (cli.durability, file.durability) {
            (Some(d), _) => d,
            (None, Some(s)) => s.parse().map_err(|e| format!("config file: {e}"))?,
            (None, None) => d.durability,
        };
        let default_host = if api_keys.is_empty() { d.host } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        let config = ServerConfig {
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            host: cli.host.or(file.host).unwrap_or(default_host),
            port: cli.port.or(file.port).unwrap_or(d.port),
            tick_hz: cli.tickrate.or(file.tickrate).unwrap_or(d.tick_hz),
            durability,
            max_body_bytes: cli.max_body_bytes.or(file.max_body_bytes).unwrap_or(d.max_body_bytes),
            api_keys,
            rate_limit: cli.rate_limit.or(file.rate_limit).unwrap_or(d.rate_limit),
            request_timeout: cli
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .map(Duration::from_millis)
                .unwrap_or(d.request_timeout),
            max_page_size: cli.max_page_size.or(file.max_page_size).unwrap_or(d.max_page_size),
            flush_interval_ticks: cli
                .flush_interval_ticks
                .or(file.flush_interval_ticks)
                .unwrap_or(d.flush_interval_ticks),
            queue_capacity: cli.queue_capacity.or(file.queue_capacity),
            log: cli.log.or(file.log).unwrap_or(d.log),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings the runtime does not check itself.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes == 0 {
            return Err("max-body-bytes must be at least 1".into());
        }
        if self.max_page_size == 0 {
            return Err("max-page-size must be at least 1".into());
        }
        if self.request_timeout.is_zero() {
            return Err("request-timeout-ms must be at least 1".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(format!("log `{}`: {e}", self.log));
        }
        // One key with two roles would silently get whichever is listed first.
        for (i, k) in self.api_keys.iter().enumerate() {
            if self.api_keys[..i].iter().any(|earlier| earlier.key == k.key) {
                return Err(format!("api-key: the key given as number {} is given twice", i + 1));
            }
        }
        self.runtime_config().validate().map_err(|e| match e {
            // Name the option, as for the server's own settings.
            tabledb::runtime::ConfigError::TickRate(hz) => format!("tickrate {hz}: {e}"),
            tabledb::runtime::ConfigError::QueueOverflow { hz } => format!("tickrate {hz}: {e}"),
            tabledb::runtime::ConfigError::Zero { what: "queue_capacity" } => {
                "queue-capacity must be at least 1".to_owned()
            }
            e => e.to_string(),
        })
    }

    /// The runtime settings these server settings imply.
    pub fn runtime_config(&self) -> tabledb::RuntimeConfig {
        tabledb::RuntimeConfig {
            tick_hz: self.tick_hz,
            flush_interval_ticks: self.flush_interval_ticks,
            queue_capacity: self.queue_capacity,
            ..tabledb::RuntimeConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(text: &str) -> Result<ServerConfig, String> {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = dir.path().join("tabledb.toml");
        std::fs::write(&path, text).expect("config file");
        ServerConfig::from_cli(Cli { config: Some(path), ..Cli::default() })
    }

    #[test]
    fn api_keys_in_the_file_go_by_the_option_name_or_the_plural() {
        for key in ["api_key", "api_keys"] {
            let config =
                from_file(&format!("{key} = [\"longenough1:admin\", \"longenough2:read\"]\n")).unwrap();
            assert_eq!(config.api_keys.len(), 2, "{key}");
        }
        let one = from_file("api_key = \"longenough1:admin\"\n").unwrap();
        assert_eq!(one.api_keys.len(), 1);
        let wrong = from_file("api_key = 7\n").unwrap_err();
        assert!(wrong.contains("a key as a string"), "{wrong}");
        let both =
            from_file("api_key = [\"longenough1:admin\"]\napi_keys = [\"longenough2:read\"]\n").unwrap_err();
        assert!(both.contains("duplicate"), "{both}");
    }
}
