//! The simulated provider: a deterministic stand-in for models whose provider
//! has no key, so a platform without credentials still runs end to end.
//!
//! Its reply is a pure function of the call (api.md, "Runs and executions"),
//! which lets tests and demos assert exact outputs.

use std::time::Duration;

use async_trait::async_trait;
use domain::{Prompt, Provider, ToolCall, Usage};
use serde_json::json;

use crate::{ModelAdapter, ModelCall, ProviderError, Reply};

/// Replies `Simulated {model} reply from {agent name}: {task}` after a fixed
/// latency, and asks for the agent's first tool (byte-wise) when it has any.
#[derive(Debug, Clone, Copy)]
pub struct Simulated {
    latency: Duration,
}

impl Simulated {
    /// A simulated provider that waits `latency` before each reply.
    pub fn new(latency: Duration) -> Self {
        Self { latency }
    }

    /// The reply to `call`, without the wait.
    pub fn reply(call: ModelCall<'_>) -> Reply {
        let prompt = call.prompt;
        let output = format!(
            "Simulated {} reply from {}: {}",
            call.model, call.agent_name, prompt.task
        );

        let usage = Usage {
            input_tokens: words(&prompt.system).saturating_add(words(&prompt.task)),
            output_tokens: words(&output),
        };
        Reply {
            output,
            tool_calls: first_tool_call(prompt).into_iter().collect(),
            usage,
        }
    }
}

#[async_trait]
impl ModelAdapter for Simulated {
    fn provider(&self) -> Provider {
        Provider::Simulated
    }

    async fn complete(&self, call: ModelCall<'_>) -> Result<Reply, ProviderError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }

        Ok(Self::reply(call))
    }
}

/// Whitespace-separated words, saturating rather than wrapping on absurd input.
fn words(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// The call of the tool with the lowest name. Tools usually arrive sorted;
/// taking the minimum keeps the rule true even when they do not.
fn first_tool_call(prompt: &Prompt) -> Option<ToolCall> {
    let first = prompt
        .tools
        .iter()
        .min_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()))?;
    Some(ToolCall {
        name: first.name.clone(),
        arguments: json!({}),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use domain::{Model, ToolSpec};

    use super::*;

    fn tool(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "d".into(),
            parameters: json!({}),
        }
    }

    fn prompt(tools: Vec<ToolSpec>) -> Prompt {
        Prompt {
            system: "You are Ada, a researcher.".into(),
            tools,
            task: "Summarise  the\tnews".into(),
        }
    }

    fn call(prompt: &Prompt) -> ModelCall<'_> {
        ModelCall {
            model: Model::Gpt4Turbo,
            agent_name: "Ada Lovelace",
            prompt,
        }
    }

    #[tokio::test]
    async fn reply_names_model_agent_and_task() {
        let prompt = prompt(vec![]);

        let reply = Simulated::new(Duration::ZERO)
            .complete(call(&prompt))
            .await
            .unwrap();

        assert_eq!(
            reply.output,
            "Simulated gpt-4-turbo reply from Ada Lovelace: Summarise  the\tnews"
        );
        assert!(reply.tool_calls.is_empty());
    }

    #[test]
    fn tokens_count_whitespace_separated_words() {
        let prompt = prompt(vec![]);

        let reply = Simulated::reply(call(&prompt));

        // 5 words of system and 3 of task in; 6 of preamble and 3 of task out.
        assert_eq!(
            reply.usage,
            Usage {
                input_tokens: 8,
                output_tokens: 9
            }
        );
    }

    #[test]
    fn the_tool_with_the_bytewise_lowest_name_is_called_with_no_arguments() {
        let prompt = prompt(vec![tool("search"), tool("Zebra"), tool("alpha")]);

        let reply = Simulated::reply(call(&prompt));

        assert_eq!(
            reply.tool_calls,
            [ToolCall {
                name: "Zebra".into(),
                arguments: json!({})
            }]
        );
    }

    #[test]
    fn the_simulated_adapter_reports_itself_as_simulated() {
        assert_eq!(
            Simulated::new(Duration::ZERO).provider(),
            Provider::Simulated
        );
    }

    #[tokio::test]
    async fn the_reply_waits_for_the_configured_latency() {
        let prompt = prompt(vec![]);
        let adapter = Simulated::new(Duration::from_millis(40));
        let started = Instant::now();

        adapter.complete(call(&prompt)).await.unwrap();

        assert!(started.elapsed() >= Duration::from_millis(40));
    }
}
