//! What a run sends to the model, built from the agent at submission time.
//!
//! The prompt is stored with the execution, so an edit to the agent between
//! submission and execution changes nothing, and the history shows exactly
//! what the model was sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A tool as the model sees it: a function definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolSpec {
    /// The function's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
}

/// The request sent to the model: identical for identical runs of an
/// unchanged agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Prompt {
    /// The system prompt: the agent's name, role, description and instructions.
    pub system: String,
    /// The agent's tools, by name (byte-wise).
    pub tools: Vec<ToolSpec>,
    /// The user's task.
    pub task: String,
}

impl Prompt {
    /// Builds the prompt for `task` from the agent's fields and its tools,
    /// which must already be ordered by name.
    pub fn new(
        agent_name: &str,
        role: &str,
        description: &str,
        instructions: &str,
        tools: Vec<ToolSpec>,
        task: &str,
    ) -> Self {
        let mut system = format!("You are {agent_name}, {role}.\n\n{description}");
        if !instructions.is_empty() {
            system.push_str("\n\n");
            system.push_str(instructions);
        }
        Self {
            system,
            tools,
            task: task.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_appended_only_when_present() {
        let bare = Prompt::new("Ada", "a researcher", "Finds papers.", "", vec![], "t");
        assert_eq!(bare.system, "You are Ada, a researcher.\n\nFinds papers.");
        let full = Prompt::new(
            "Ada",
            "a researcher",
            "Finds papers.",
            "Be brief.",
            vec![],
            "t",
        );
        assert!(full.system.ends_with("\n\nBe brief."));
    }
}
