//! OpenAI Chat Completions (`gpt-4o`, `gpt-4-turbo`): the request body, the
//! reply's shape, and the adapter between them. Any server speaking the same
//! format (vLLM, Ollama, llama.cpp) works through `base_url`.

use async_trait::async_trait;
use domain::{Prompt, Provider, ToolCall, Usage};
use reqwest::Client;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adapters::BuildError;
use crate::config::{AdapterConfig, UpstreamModelIds};
use crate::http::{secret_header, send_json};
use crate::{ModelAdapter, ModelCall, ProviderError, Reply};

/// The live OpenAI adapter; built only when a key is configured.
#[derive(Debug)]
pub(crate) struct OpenAi {
    client: Client,
    url: String,
    authorization: HeaderValue,
    key: SecretString,
    upstream_ids: UpstreamModelIds,
}

impl OpenAi {
    pub(crate) fn new(
        client: &Client,
        key: SecretString,
        config: &AdapterConfig,
    ) -> Result<Self, BuildError> {
        let bearer = format!("Bearer {}", key.expose_secret());
        let authorization = secret_header(Provider::Openai, &bearer)?;
        let base_url = config.openai.base_url.trim_end_matches('/');
        Ok(Self {
            client: client.clone(),
            url: format!("{base_url}/chat/completions"),
            authorization,
            key,
            upstream_ids: config.upstream_ids.clone(),
        })
    }
}

#[async_trait]
impl ModelAdapter for OpenAi {
    fn provider(&self) -> Provider {
        Provider::Openai
    }

    async fn complete(&self, call: ModelCall<'_>) -> Result<Reply, ProviderError> {
        let body = ChatRequest::new(self.upstream_ids.get(call.model), call.prompt);
        let request = self
            .client
            .post(&self.url)
            .header(AUTHORIZATION, self.authorization.clone())
            .json(&body);

        let completion: Completion =
            send_json(Provider::Openai, request, self.key.expose_secret()).await?;

        completion.into_reply()
    }
}

/// `POST /chat/completions`: the system prompt, then the task as the user.
#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    // OpenAI refuses an empty `tools` array, so none means no field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<FunctionTool<'a>>,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Debug, Serialize)]
struct FunctionTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Debug, Serialize)]
struct Function<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

impl<'a> ChatRequest<'a> {
    fn new(model: &'a str, prompt: &'a Prompt) -> Self {
        let messages = [
            Message {
                role: "system",
                content: &prompt.system,
            },
            Message {
                role: "user",
                content: &prompt.task,
            },
        ];
        let tools = prompt
            .tools
            .iter()
            .map(|tool| FunctionTool {
                kind: "function",
                function: Function {
                    name: &tool.name,
                    description: &tool.description,
                    parameters: &tool.parameters,
                },
            })
            .collect();
        Self {
            model,
            messages,
            tools,
        }
    }
}

/// The parts of a chat completion the platform keeps.
#[derive(Debug, Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    // Some compatible servers leave usage out; zero is the honest count then.
    usage: Option<CompletionUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: AssistantMessage,
}

#[derive(Debug, Deserialize)]
struct AssistantMessage {
    content: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    arguments: Value,
}

#[derive(Debug, Deserialize)]
struct CompletionUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl Completion {
    fn into_reply(self) -> Result<Reply, ProviderError> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(ProviderError::malformed(
                Provider::Openai,
                "it has no choices",
            ));
        };

        let message = choice.message;
        let tool_calls = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(tool_call);
        let usage = self.usage.map_or_else(Usage::default, |usage| Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        });
        Ok(Reply {
            output: message.content.unwrap_or_default(),
            tool_calls: tool_calls.collect(),
            usage,
        })
    }
}

/// OpenAI sends arguments as a JSON *string*; what the model wrote there is
/// not always valid JSON, and then the text itself is what gets recorded.
fn tool_call(call: WireToolCall) -> ToolCall {
    let WireFunction { name, arguments } = call.function;
    let arguments = match arguments {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => other,
    };
    ToolCall { name, arguments }
}

#[cfg(test)]
mod tests {
    use domain::ToolSpec;
    use serde_json::json;

    use super::*;

    fn parse(body: &Value) -> Result<Reply, ProviderError> {
        let completion: Completion = serde_json::from_value(body.clone())
            .map_err(|error| ProviderError::malformed(Provider::Openai, &error.to_string()))?;
        completion.into_reply()
    }

    fn prompt(tools: Vec<ToolSpec>) -> Prompt {
        Prompt {
            system: "You are Ada.".into(),
            tools,
            task: "Find papers".into(),
        }
    }

    #[test]
    fn request_sends_system_then_task_and_tools_as_functions() {
        let tool = ToolSpec {
            name: "search".into(),
            description: "Searches.".into(),
            parameters: json!({"type": "object"}),
        };
        let prompt = prompt(vec![tool]);

        let body = serde_json::to_value(ChatRequest::new("gpt-4o-2024", &prompt));

        let expected = json!({
            "model": "gpt-4o-2024",
            "messages": [
                {"role": "system", "content": "You are Ada."},
                {"role": "user", "content": "Find papers"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "search", "description": "Searches.", "parameters": {"type": "object"}
            }}]
        });
        assert_eq!(body.ok(), Some(expected));
    }

    #[test]
    fn request_without_tools_has_no_tools_field() {
        let prompt = prompt(vec![]);

        let body = serde_json::to_value(ChatRequest::new("gpt-4o", &prompt)).unwrap();

        assert!(body.get("tools").is_none(), "{body}");
    }

    #[test]
    fn reply_with_null_content_and_tool_calls_is_parsed() {
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "search", "arguments": "{\"q\":\"rust\"}"}},
                {"id": "c2", "type": "function",
                 "function": {"name": "fetch", "arguments": "not json"}}
            ]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        });

        let reply = parse(&body).unwrap();

        assert_eq!(reply.output, "");
        assert_eq!(reply.tool_calls[0].arguments, json!({"q": "rust"}));
        assert_eq!(reply.tool_calls[1].arguments, json!("not json"));
        assert_eq!(
            reply.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 3
            }
        );
    }

    #[test]
    fn reply_without_choices_is_malformed() {
        let error = parse(&json!({"choices": [], "usage": null})).unwrap_err();

        assert!(
            matches!(error, ProviderError::Unavailable { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("malformed"), "{error}");
    }

    #[test]
    fn reply_of_another_shape_is_malformed() {
        let error = parse(&json!({"choices": "nope"})).unwrap_err();

        assert!(
            matches!(error, ProviderError::Unavailable { .. }),
            "{error:?}"
        );
    }
}
