//! [`Config`]: a plugin's configuration.

use serde_json::Value as Json;

/// A plugin's configuration: the `config:` block of its entry in the relay's YAML, as JSON
/// (`null` when there is none).
///
/// The getters take a top-level key. They return `Ok(None)` when the key is absent (or the
/// configuration is `null`) and an error naming the key when its value has the wrong type, so a
/// plugin can pass errors on with `?`:
///
/// ```
/// # use walrelay_plugin_sdk::Config;
/// # fn main() -> Result<(), String> {
/// let config = Config::parse(r#"{"mode": "hash", "columns": ["*.email"]}"#)?;
/// config.deny_unknown(&["mode", "columns", "text"])?;
/// assert_eq!(config.get_str("mode")?.unwrap_or("redact"), "hash");
/// assert_eq!(config.require_strs("columns")?, ["*.email"]);
/// assert_eq!(config.get_u64("copies")?, None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    value: Json,
}

impl Config {
    /// Parses the JSON text the relay passes (empty text counts as `null`).
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Config { value: Json::Null });
        }
        serde_json::from_str(json)
            .map(|value| Config { value })
            .map_err(|e| format!("configuration is not valid JSON: {e}"))
    }

    /// A configuration from a JSON value.
    pub fn from_value(value: Json) -> Self {
        Config { value }
    }

    /// The whole configuration.
    pub fn value(&self) -> &Json {
        &self.value
    }

    /// The whole configuration, to deserialize (with `serde_json::from_value`).
    pub fn into_value(self) -> Json {
        self.value
    }

    /// Whether there is no configuration (JSON `null`).
    pub fn is_null(&self) -> bool {
        self.value.is_null()
    }

    /// The value of `key`; an error when the configuration is neither an object nor `null`.
    pub fn get(&self, key: &str) -> Result<Option<&Json>, String> {
        match &self.value {
            Json::Null => Ok(None),
            Json::Object(map) => Ok(map.get(key).filter(|v| !v.is_null())),
            other => Err(format!(
                "configuration must be an object, not {}",
                kind(other)
            )),
        }
    }

    /// Fails when the configuration has a key not in `known` (to catch typos).
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), String> {
        if let Json::Object(map) = &self.value {
            if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!(
                    "unknown configuration key `{key}` (expected one of: {})",
                    known.join(", ")
                ));
            }
        } else {
            self.get("")?;
        }
        Ok(())
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, String> {
        self.typed(key, "a string", Json::as_str)
    }

    /// A boolean.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, String> {
        self.typed(key, "true or false", Json::as_bool)
    }

    /// A non-negative integer.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.typed(key, "a non-negative integer", Json::as_u64)
    }

    /// An integer.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, String> {
        self.typed(key, "an integer", Json::as_i64)
    }

    /// A number.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, String> {
        self.typed(key, "a number", Json::as_f64)
    }

    /// A list of strings.
    pub fn get_strs(&self, key: &str) -> Result<Option<Vec<&str>>, String> {
        self.typed(key, "a list of strings", |v| {
            v.as_array()?.iter().map(Json::as_str).collect()
        })
    }

    /// A string that must be there.
    pub fn require_str(&self, key: &str) -> Result<&str, String> {
        self.get_str(key)?.ok_or_else(|| missing(key))
    }

    /// A list of strings that must be there.
    pub fn require_strs(&self, key: &str) -> Result<Vec<&str>, String> {
        self.get_strs(key)?.ok_or_else(|| missing(key))
    }

    /// A non-negative integer that must be there.
    pub fn require_u64(&self, key: &str) -> Result<u64, String> {
        self.get_u64(key)?.ok_or_else(|| missing(key))
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&'a Json) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => convert(v).map(Some).ok_or_else(|| {
                format!(
                    "configuration key `{key}` must be {expected}, not {}",
                    kind(v)
                )
            }),
        }
    }
}

fn missing(key: &str) -> String {
    format!("configuration key `{key}` is required")
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}
