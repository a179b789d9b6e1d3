//! Validated text values: names, roles, descriptions, instructions, tasks.
//!
//! Each type is a newtype that can only be built through `parse`, which
//! enforces the limits of the API contract. Lengths count Unicode scalar
//! values; text is kept exactly as sent, never trimmed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One offending field of a request, by its path (`tool_ids[1]`) or query name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the problem is: a body path such as `tool_ids[1]`, or a query parameter.
    pub field: String,
    /// What is wrong with it, in one sentence.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`, described by `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Rejects U+0000 anywhere: PostgreSQL cannot store it in text.
pub fn reject_nul(value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err("must not contain the NUL character (U+0000)".into());
    }
    Ok(())
}

fn check_length(value: &str, min: usize, max: usize) -> Result<(), String> {
    let length = value.chars().count();
    if length < min || length > max {
        return Err(if min == 0 {
            format!("must be at most {max} characters long, not {length}")
        } else {
            format!("must be {min} to {max} characters long, not {length}")
        });
    }
    Ok(())
}

fn check_text(value: &str, min: usize, max: usize) -> Result<(), String> {
    reject_nul(value)?;
    check_length(value, min, max)
}

/// Names are looked up by `{ref}`, where anything that parses as a UUID is an
/// id: a name that looked like one could never be found by name.
fn reject_uuid_like(value: &str) -> Result<(), String> {
    if crate::reference::uuid_in_any_form(value).is_some() {
        return Err(
            "must not be a UUID in any form, so that it cannot be mistaken for an id".into(),
        );
    }
    Ok(())
}

macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` against the contract, or says what is wrong.
            pub fn parse(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            /// The text, exactly as sent.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A tool's name: 1-64 of `A-Z a-z 0-9 _ -`, what providers accept as a function name.
    ToolName,
    |value| {
        check_length(value, 1, 64)?;
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err("may hold only the letters A-Z and a-z, digits, '_' and '-'".into());
        }
        reject_uuid_like(value)
    }
);

text_newtype!(
    /// An agent's name: 1-100 characters, no control characters, no white
    /// space at either end.
    AgentName,
    |value| {
        check_text(value, 1, 100)?;
        if value.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
            return Err("must not start or end with white space".into());
        }
        reject_uuid_like(value)
    }
);

text_newtype!(
    /// An agent's role, 1-200 characters.
    Role,
    |value| check_text(value, 1, 200)
);

text_newtype!(
    /// A tool's or agent's description, 1-4096 characters.
    Description,
    |value| check_text(value, 1, 4096)
);

text_newtype!(
    /// An agent's extra system prompt, 0-32768 characters.
    Instructions,
    |value| check_text(value, 0, 32_768)
);

text_newtype!(
    /// What a run asks of the agent, 1-32768 characters.
    Task,
    |value| check_text(value, 1, 32_768)
);

impl Instructions {
    /// No extra system prompt: the default.
    pub fn empty() -> Self {
        Self(String::new())
    }
}

/// A tool's parameters: a JSON Schema object whose `type` is `"object"`,
/// at most [`Parameters::MAX_BYTES`] of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Parameters(Value);

impl Parameters {
    /// The largest schema accepted, in bytes of compact JSON. Every agent
    /// read carries the schemas of up to 64 tools, and every run sends them
    /// to a provider: 16 KiB is ample for a function's arguments.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Checks that `value` is a JSON Schema for an object, free of U+0000,
    /// whose `properties` (if any) is an object, and at most
    /// [`Self::MAX_BYTES`] long.
    pub fn parse(value: Value) -> Result<Self, String> {
        let Some(object) = value.as_object() else {
            return Err("must be a JSON Schema object such as {\"type\": \"object\"}".into());
        };
        if object.get("type") != Some(&Value::String("object".into())) {
            return Err("must be a JSON Schema whose \"type\" is \"object\"".into());
        }
        // Providers refuse a function whose `properties` is anything else.
        if object
            .get("properties")
            .is_some_and(|properties| !properties.is_object())
        {
            return Err("must have an object as \"properties\", one schema per argument".into());
        }
        let size = value.to_string().len();
        if size > Self::MAX_BYTES {
            return Err(format!(
                "must be at most {} bytes (16 KiB) of compact JSON; this one is {size}",
                Self::MAX_BYTES
            ));
        }
        if contains_nul(&value) {
            return Err("must not contain the NUL character (U+0000)".into());
        }
        Ok(Self(value))
    }

    /// The schema as JSON.
    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

impl Default for Parameters {
    fn default() -> Self {
        Self(serde_json::json!({"type": "object", "properties": {}}))
    }
}

impl TryFrom<Value> for Parameters {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        Self::parse(value)
    }
}

impl From<Parameters> for Value {
    fn from(value: Parameters) -> Value {
        value.0
    }
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || contains_nul(item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_allow_only_function_name_characters() {
        assert!(ToolName::parse("web_search-2").is_ok());
        assert!(ToolName::parse("web search").is_err());
        assert!(ToolName::parse("").is_err());
        assert!(ToolName::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn names_that_parse_as_uuids_are_rejected_in_every_form() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        for form in [
            id.to_owned(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            format!("{{{}}}", id.replace('-', "")),
            format!("urn:uuid:{}", id.replace('-', "")),
            format!("uuid:{}", id.to_uppercase()),
        ] {
            assert!(AgentName::parse(form.clone()).is_err(), "{form}");
        }
        assert!(ToolName::parse(id.replace('-', "")).is_err());
    }

    #[test]
    fn agent_names_keep_inner_space_but_refuse_it_at_the_ends() {
        assert!(AgentName::parse("Research helper").is_ok());
        assert!(AgentName::parse(" padded").is_err());
        assert!(AgentName::parse("tab\tinside").is_err());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(Role::parse("é".repeat(200)).is_ok());
        assert!(Role::parse("é".repeat(201)).is_err());
    }

    #[test]
    fn nul_is_refused_in_text_and_in_parameters() {
        assert!(Task::parse("a\0b").is_err());
        let schema = serde_json::json!({"type": "object", "description": "a\u{0}"});
        assert!(Parameters::parse(schema).is_err());
    }

    #[test]
    fn parameters_must_describe_an_object() {
        assert!(Parameters::parse(serde_json::json!({"type": "string"})).is_err());
        assert!(Parameters::parse(serde_json::json!([])).is_err());
        assert!(Parameters::parse(serde_json::json!({"type": "object"})).is_ok());
    }

    #[test]
    fn parameters_properties_must_be_an_object() {
        let listed = serde_json::json!({"type": "object", "properties": ["city"]});
        let mapped = serde_json::json!({"type": "object", "properties": {"city": {}}});

        assert!(Parameters::parse(listed).is_err());
        assert!(Parameters::parse(mapped).is_ok());
    }

    #[test]
    fn parameters_are_at_most_16_kib_of_compact_json() {
        // `{"type":"object","description":""}` is 34 bytes before the text.
        let sized =
            |text: usize| serde_json::json!({"type": "object", "description": "x".repeat(text)});

        assert!(Parameters::parse(sized(Parameters::MAX_BYTES - 34)).is_ok());
        assert!(Parameters::parse(sized(Parameters::MAX_BYTES - 33)).is_err());
    }
}
