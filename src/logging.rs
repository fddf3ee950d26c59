//! Log setup: human-readable by default, JSON lines with `--log-json` or
//! `log.format = "json"`; `RUST_LOG` filters as usual.

use ipgate_config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(json_flag: bool, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,sled=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into files or journald.
        .with_ansi(std::io::stderr().is_terminal());
    let result = if json_flag || format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("logging already set up: {e}");
    }
}
