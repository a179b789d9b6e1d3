//! The models a run may ask for, and the providers that serve them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// A supported model, by the name clients use.
//
// Reading one from JSON lists the supported names when it fails, whatever
// was sent instead (see the `Deserialize` impl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, ToSchema)]
pub enum Model {
    /// OpenAI GPT-4o, the default.
    #[default]
    #[serde(rename = "gpt-4o")]
    Gpt4o,
    /// OpenAI GPT-4 Turbo.
    #[serde(rename = "gpt-4-turbo")]
    Gpt4Turbo,
    /// Anthropic Claude 3 Opus.
    #[serde(rename = "claude-3-opus")]
    Claude3Opus,
}

impl Model {
    /// Every supported model, in the order `GET /models` lists them.
    pub const ALL: [Model; 3] = [Model::Gpt4o, Model::Gpt4Turbo, Model::Claude3Opus];

    /// The name clients send and see.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Gpt4o => "gpt-4o",
            Model::Gpt4Turbo => "gpt-4-turbo",
            Model::Claude3Opus => "claude-3-opus",
        }
    }

    /// The provider whose API serves this model when it runs live.
    pub fn provider(self) -> Provider {
        match self {
            Model::Gpt4o | Model::Gpt4Turbo => Provider::Openai,
            Model::Claude3Opus => Provider::Anthropic,
        }
    }

    /// The supported names, for error messages: `gpt-4o, gpt-4-turbo, claude-3-opus`.
    pub fn supported_list() -> String {
        Model::ALL.map(Model::as_str).join(", ")
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Model {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModelName;

        impl Visitor<'_> for ModelName {
            type Value = Model;

            // serde puts this after "expected" when a number, a list or an
            // object arrives, so a wrong type lists the models too.
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                write!(formatter, "one of {}", Model::supported_list())
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Model, E> {
                value.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(ModelName)
    }
}

impl FromStr for Model {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Model::ALL
            .into_iter()
            .find(|model| model.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "is not a supported model; use one of {}",
                    Model::supported_list()
                )
            })
    }
}

/// The adapter that ran (or would run) a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI Chat Completions, or any server that speaks it.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// The deterministic stand-in used when a provider has no credentials.
    Simulated,
}

impl Provider {
    /// The lower-case name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Simulated => "simulated",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "openai" => Ok(Provider::Openai),
            "anthropic" => Ok(Provider::Anthropic),
            "simulated" => Ok(Provider::Simulated),
            other => Err(format!("unknown provider {other:?}")),
        }
    }
}

/// Whether a model's provider has credentials, so runs reach it for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelMode {
    /// Credentials are configured: runs call the provider.
    Live,
    /// No credentials: runs use the simulated provider.
    Simulated,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_models_are_refused_with_the_supported_list() {
        let error = "gpt-5".parse::<Model>().unwrap_err();
        assert!(
            error.contains("gpt-4o, gpt-4-turbo, claude-3-opus"),
            "{error}"
        );
    }

    #[test]
    fn a_model_of_the_wrong_type_is_refused_with_the_supported_list() {
        let error = serde_json::from_str::<Model>("5").unwrap_err().to_string();
        assert!(
            error.contains("expected one of gpt-4o, gpt-4-turbo, claude-3-opus"),
            "{error}"
        );
    }

    #[test]
    fn model_names_round_trip() {
        for model in Model::ALL {
            assert_eq!(model.as_str().parse::<Model>(), Ok(model));
        }
    }
}
