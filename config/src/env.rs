//! `IPGATE_SECTION__KEY=value` overrides. The environment is passed in as a
//! list of pairs so tests never touch the process environment.

use crate::ConfigError;
use toml::{Table, Value};

/// Applies every `IPGATE_SECTION__KEY` pair to the parsed file. A value that
/// reads as a TOML value (`2`, `true`, `["10.0.0.0/8"]`) keeps its type;
/// anything else is taken as a string.
pub fn apply_overrides<I>(root: &mut Table, vars: I) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("IPGATE_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let path = format!("{section}.{key}");
        if section.is_empty() || key.is_empty() || key.contains("__") {
            return Err(ConfigError::Invalid {
                key: path,
                reason: format!("environment variable {name} is not IPGATE_SECTION__KEY"),
            });
        }
        let value = parse_value(&raw);
        let table = root
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(table) = table else {
            return Err(ConfigError::Invalid {
                key: section,
                reason: "is not a section".into(),
            });
        };
        table.insert(key, value);
    }
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_keep_types_and_fall_back_to_strings() {
        let mut root = Table::new();
        let vars = vec![
            ("IPGATE_PROXY__THREADS".to_string(), "4".to_string()),
            (
                "IPGATE_PROXY__LISTEN".to_string(),
                "127.0.0.1:1".to_string(),
            ),
            ("IPGATE_ADMIN_TOKEN".to_string(), "secret".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        apply_overrides(&mut root, vars).ok();
        let proxy = root
            .get("proxy")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        assert_eq!(proxy.get("threads"), Some(&Value::Integer(4)));
        assert_eq!(
            proxy.get("listen"),
            Some(&Value::String("127.0.0.1:1".into()))
        );
        assert_eq!(
            root.len(),
            1,
            "secrets and foreign variables are not config keys"
        );
    }
}
