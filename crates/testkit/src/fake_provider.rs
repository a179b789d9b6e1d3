//! A fake model provider speaking the OpenAI and Anthropic wire formats.
