//! How a provider call fails, and how each failure reaches the execution.
//!
//! Policy: every failure is one of four kinds, decided here and nowhere else.
//! 429 is `RateLimited`; 5xx, 408, other unexpected statuses, connection
//! failures and replies that do not parse are `Unavailable`; the remaining
//! 4xx (401, 400, 404, ...) are `Rejected` and permanent; a transport timeout
//! is `Timeout`. 408 counts as `Unavailable` rather than `Timeout` because it
//! is the provider's clock, not ours, that ran out: `timeout` on an execution
//! means the platform's own time budget was spent.
//!
//! Messages are one sentence meant for the tenant who ran the model: they
//! may quote the provider's own error message, cleaned and truncated, but
//! never a request header or a key.

use std::time::Duration;

use domain::{ErrorCode, Provider};

/// The longest quote of a provider's error message, in characters.
const DETAIL_MAX_CHARS: usize = 200;

/// Why a model call failed. `Display` is a sentence safe to show users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// HTTP 429: the provider wants fewer requests.
    #[error("{message}")]
    RateLimited {
        /// What happened.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// 5xx, a connection failure, or a reply that is not the documented shape.
    #[error("{message}")]
    Unavailable {
        /// What happened.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Any other 4xx: the request itself is refused, so retrying cannot help.
    #[error("{message}")]
    Rejected {
        /// What happened.
        message: String,
    },
    /// The transport gave up waiting (connecting, for instance).
    #[error("{message}")]
    Timeout {
        /// What happened.
        message: String,
    },
}

impl ProviderError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ProviderError::Rejected { .. })
    }

    /// The code recorded on a failed execution.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::RateLimited { .. } => ErrorCode::ProviderRateLimited,
            ProviderError::Unavailable { .. } => ErrorCode::ProviderUnavailable,
            ProviderError::Rejected { .. } => ErrorCode::ProviderRejected,
            ProviderError::Timeout { .. } => ErrorCode::Timeout,
        }
    }

    /// The wait the provider asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Unavailable { retry_after, .. } => *retry_after,
            ProviderError::Rejected { .. } | ProviderError::Timeout { .. } => None,
        }
    }

    /// Classifies a non-success HTTP status. `detail` is the provider's own
    /// message, already cleaned.
    pub(crate) fn from_status(
        provider: Provider,
        status: u16,
        retry_after: Option<Duration>,
        detail: Option<&str>,
    ) -> Self {
        let name = label(provider);
        let sentence = |what: &str| match detail {
            Some(detail) => format!("{name} {what} (HTTP {status}): {detail}"),
            None => format!("{name} {what} (HTTP {status})."),
        };

        match status {
            429 => ProviderError::RateLimited {
                message: sentence("rate-limited the request"),
                retry_after,
            },
            408 => ProviderError::Unavailable {
                message: sentence("timed out waiting for the request"),
                retry_after,
            },
            400..=499 => ProviderError::Rejected {
                message: sentence("rejected the request"),
            },
            500..=599 => ProviderError::Unavailable {
                message: sentence("is unavailable"),
                retry_after,
            },
            _ => ProviderError::Unavailable {
                message: sentence("answered with an unexpected status"),
                retry_after,
            },
        }
    }

    /// A 2xx reply that is not the documented shape.
    pub(crate) fn malformed(provider: Provider, why: &str) -> Self {
        let why = clean_detail(why, "").unwrap_or_default();
        ProviderError::Unavailable {
            message: format!("{} sent a malformed reply: {why}", label(provider)),
            retry_after: None,
        }
    }

    /// The request never got a complete answer: no connection, a cut-off
    /// body, or a transport timeout.
    pub(crate) fn transport(provider: Provider, timed_out: bool, what: &str) -> Self {
        let message = format!("{} could not be reached: {what}.", label(provider));
        if timed_out {
            ProviderError::Timeout { message }
        } else {
            ProviderError::Unavailable {
                message,
                retry_after: None,
            }
        }
    }
}

/// The provider's name as users know it.
fn label(provider: Provider) -> &'static str {
    match provider {
        Provider::Openai => "OpenAI",
        Provider::Anthropic => "Anthropic",
        Provider::Simulated => "The simulated provider",
    }
}

/// Makes a provider's error message fit to quote: one line, no key (neither
/// ours, `secret`, nor anything shaped like one), at most
/// [`DETAIL_MAX_CHARS`] characters. `None` when nothing is left.
pub(crate) fn clean_detail(raw: &str, secret: &str) -> Option<String> {
    let redacted = if secret.is_empty() {
        raw.to_owned()
    } else {
        raw.replace(secret, "[redacted]")
    };
    let words: Vec<&str> = redacted
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .map(|word| {
            if looks_like_key(word) {
                "[redacted]"
            } else {
                word
            }
        })
        .collect();
    if words.is_empty() {
        return None;
    }

    let line = words.join(" ");
    if line.chars().count() <= DETAIL_MAX_CHARS {
        return Some(line);
    }
    let cut: String = line.chars().take(DETAIL_MAX_CHARS).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// OpenAI and Anthropic keys start with `sk-`; OpenAI quotes a masked key
/// back in its 401 message, and even a masked key is not ours to show.
fn looks_like_key(word: &str) -> bool {
    word.trim_start_matches(|c: char| !c.is_alphanumeric())
        .starts_with("sk-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_into_the_four_kinds() {
        let kind = |status| ProviderError::from_status(Provider::Openai, status, None, None).code();

        assert_eq!(kind(429), ErrorCode::ProviderRateLimited);
        assert_eq!(kind(500), ErrorCode::ProviderUnavailable);
        assert_eq!(kind(503), ErrorCode::ProviderUnavailable);
        assert_eq!(kind(529), ErrorCode::ProviderUnavailable);
        assert_eq!(kind(408), ErrorCode::ProviderUnavailable);
        assert_eq!(kind(400), ErrorCode::ProviderRejected);
        assert_eq!(kind(401), ErrorCode::ProviderRejected);
        assert_eq!(kind(404), ErrorCode::ProviderRejected);
    }

    #[test]
    fn only_rejections_are_permanent() {
        let wait = Some(Duration::from_secs(3));

        let limited = ProviderError::from_status(Provider::Anthropic, 429, wait, None);
        let failed = ProviderError::from_status(Provider::Anthropic, 502, None, None);
        let refused = ProviderError::from_status(Provider::Anthropic, 401, wait, None);
        let slow = ProviderError::transport(Provider::Anthropic, true, "connect timed out");

        assert!(limited.is_transient() && failed.is_transient() && slow.is_transient());
        assert!(!refused.is_transient());
        assert_eq!(limited.retry_after(), wait);
        assert_eq!(refused.retry_after(), None);
        assert_eq!(slow.code(), ErrorCode::Timeout);
    }

    #[test]
    fn messages_name_the_provider_status_and_detail() {
        let error = ProviderError::from_status(Provider::Openai, 400, None, Some("Unknown model."));

        assert_eq!(
            error.to_string(),
            "OpenAI rejected the request (HTTP 400): Unknown model."
        );
    }

    #[test]
    fn details_lose_keys_and_line_breaks() {
        let raw = "Incorrect API key provided: sk-proj-abc***xyz.\nAlso secret123 leaked.";

        let clean = clean_detail(raw, "secret123");

        assert_eq!(
            clean.as_deref(),
            Some("Incorrect API key provided: [redacted] Also [redacted] leaked.")
        );
    }

    #[test]
    fn long_details_are_truncated() {
        let raw = "word ".repeat(100);

        let clean = clean_detail(&raw, "").unwrap_or_default();

        assert!(clean.ends_with('…'));
        assert!(clean.chars().count() <= DETAIL_MAX_CHARS + 1);
    }

    #[test]
    fn blank_details_are_dropped() {
        assert_eq!(clean_detail(" \n\t ", ""), None);
    }
}
