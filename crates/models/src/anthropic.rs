//! Anthropic Messages (`claude-3-opus`): the request body, the reply's
//! content blocks, and the adapter between them.

use async_trait::async_trait;
use domain::{Prompt, Provider, ToolCall, Usage};
use reqwest::Client;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adapters::BuildError;
use crate::config::{AdapterConfig, UpstreamModelIds};
use crate::http::{secret_header, send_json};
use crate::{ModelAdapter, ModelCall, ProviderError, Reply};

/// The API version this adapter's request and reply shapes follow.
const API_VERSION: &str = "2023-06-01";

/// The live Anthropic adapter; built only when a key is configured.
#[derive(Debug)]
pub(crate) struct Anthropic {
    client: Client,
    url: String,
    api_key: HeaderValue,
    key: SecretString,
    upstream_ids: UpstreamModelIds,
    max_tokens: u32,
}

impl Anthropic {
    pub(crate) fn new(
        client: &Client,
        key: SecretString,
        config: &AdapterConfig,
    ) -> Result<Self, BuildError> {
        let api_key = secret_header(Provider::Anthropic, key.expose_secret())?;
        let base_url = config.anthropic.base_url.trim_end_matches('/');
        Ok(Self {
            client: client.clone(),
            url: format!("{base_url}/v1/messages"),
            api_key,
            key,
            upstream_ids: config.upstream_ids.clone(),
            max_tokens: config.anthropic_max_tokens,
        })
    }
}

#[async_trait]
impl ModelAdapter for Anthropic {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    async fn complete(&self, call: ModelCall<'_>) -> Result<Reply, ProviderError> {
        let model = self.upstream_ids.get(call.model);
        let body = MessagesRequest::new(model, self.max_tokens, call.prompt);
        let request = self
            .client
            .post(&self.url)
            .header("x-api-key", self.api_key.clone())
            .header("anthropic-version", API_VERSION)
            .json(&body);

        let message: Message =
            send_json(Provider::Anthropic, request, self.key.expose_secret()).await?;

        Ok(message.into_reply())
    }
}

/// `POST /v1/messages`: the system prompt on its own field, the task as the
/// one user message.
#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: [UserMessage<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
}

#[derive(Debug, Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

impl<'a> MessagesRequest<'a> {
    fn new(model: &'a str, max_tokens: u32, prompt: &'a Prompt) -> Self {
        let tools = prompt
            .tools
            .iter()
            .map(|tool| Tool {
                name: &tool.name,
                description: &tool.description,
                input_schema: &tool.parameters,
            })
            .collect();
        Self {
            model,
            max_tokens,
            system: &prompt.system,
            messages: [UserMessage {
                role: "user",
                content: &prompt.task,
            }],
            tools,
        }
    }
}

/// The parts of a message reply the platform keeps.
#[derive(Debug, Deserialize)]
struct Message {
    content: Vec<Block>,
    // Compatible servers may leave usage out; zero is the honest count then.
    usage: Option<MessageUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        name: String,
        input: Value,
    },
    /// Block kinds newer than this adapter (thinking, citations, ...) carry
    /// nothing the platform records, so they are skipped, not fatal.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageUsage {
    input_tokens: u32,
    output_tokens: u32,
}

impl Message {
    fn into_reply(self) -> Reply {
        let mut output = String::new();
        let mut tool_calls = Vec::new();
        for block in self.content {
            match block {
                Block::Text { text } => output.push_str(&text),
                Block::ToolUse { name, input } => {
                    tool_calls.push(ToolCall {
                        name,
                        arguments: input,
                    });
                }
                Block::Other => {}
            }
        }

        let usage = self.usage.map_or_else(Usage::default, |usage| Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
        });
        Reply {
            output,
            tool_calls,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::ToolSpec;
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> Result<Reply, serde_json::Error> {
        serde_json::from_value::<Message>(body).map(Message::into_reply)
    }

    #[test]
    fn request_carries_max_tokens_system_task_and_tools() {
        let tool = ToolSpec {
            name: "search".into(),
            description: "Searches.".into(),
            parameters: json!({"type": "object"}),
        };
        let prompt = Prompt {
            system: "You are Ada.".into(),
            tools: vec![tool],
            task: "Find".into(),
        };

        let body = serde_json::to_value(MessagesRequest::new("claude-x", 512, &prompt)).ok();

        let expected = json!({
            "model": "claude-x",
            "max_tokens": 512,
            "system": "You are Ada.",
            "messages": [{"role": "user", "content": "Find"}],
            "tools": [{"name": "search", "description": "Searches.",
                       "input_schema": {"type": "object"}}]
        });
        assert_eq!(body, Some(expected));
    }

    #[test]
    fn text_blocks_are_joined_and_tool_uses_recorded() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me "},
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "look."},
                {"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "rust"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 20, "output_tokens": 8}
        });

        let reply = parse(body).unwrap();

        assert_eq!(reply.output, "Let me look.");
        assert_eq!(
            reply.tool_calls,
            [ToolCall {
                name: "search".into(),
                arguments: json!({"q": "rust"})
            }]
        );
        assert_eq!(
            reply.usage,
            Usage {
                input_tokens: 20,
                output_tokens: 8
            }
        );
    }

    #[test]
    fn reply_without_content_is_malformed() {
        let parsed = parse(json!({"type": "message", "usage": {}}));

        assert!(parsed.is_err());
    }
}
