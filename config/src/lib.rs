//! ipgate's configuration: the TOML file of docs/configuration.md, overridden by
//! `IPGATE_SECTION__KEY` variables, parsed into typed values and checked as
//! a whole. Every refusal names the key (`proxy.route[1].upstream`) and why.

#![forbid(unsafe_code)]

mod env;
mod model;
pub mod net;
mod types;
mod validate;

pub use model::*;
pub use types::{AccountSource, Cidr, HumanDuration, KeySource, Upstream};

use std::path::{Path, PathBuf};

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl Config {
    /// Reads `path`, applies the process environment's overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, std::env::vars())
    }

    /// Parses TOML text with the given environment pairs applied on top.
    pub fn parse<I>(text: &str, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::Syntax(e.to_string().trim_end().to_string())
        })?;
        env::apply_overrides(&mut root, vars)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
                let key = e.path().to_string();
                let reason = e.into_inner().message().to_string();
                ConfigError::Invalid { key, reason }
            })?;
        validate::check(&config)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
