//! Model adapters: OpenAI Chat Completions, Anthropic Messages and a simulated provider.
