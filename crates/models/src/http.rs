//! The HTTP plumbing both live adapters share: the client, the key header,
//! and one way to send a JSON request and turn whatever comes back into a
//! parsed reply or a [`ProviderError`].

use std::time::{Duration, SystemTime};

use domain::Provider;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Client, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::adapters::BuildError;
use crate::error::{ProviderError, clean_detail};

/// Long enough for a slow TLS handshake, short enough that a dead host fails
/// the attempt well within the worker's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client both providers share. It has a connect timeout but no overall
/// one: the worker times each call out itself, by dropping its future.
pub(crate) fn client() -> Result<Client, BuildError> {
    // reqwest panics on build when no rustls provider is installed; a
    // start-up error is kinder than a panic in whoever forgot to install one.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(BuildError::NoCryptoProvider);
    }

    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("agent-platform/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| BuildError::Client(error.to_string()))
}

/// A header value carrying a secret: marked sensitive, so neither `Debug`
/// nor HTTP/2 header compression keeps it around.
pub(crate) fn secret_header(provider: Provider, value: &str) -> Result<HeaderValue, BuildError> {
    let mut header =
        HeaderValue::from_str(value).map_err(|_| BuildError::InvalidApiKey(provider))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Sends `request` and parses a 2xx body as `T`. Anything else becomes a
/// [`ProviderError`]; `secret` is scrubbed from any quoted error message.
pub(crate) async fn send_json<T: DeserializeOwned>(
    provider: Provider,
    request: RequestBuilder,
    secret: &str,
) -> Result<T, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|error| transport_error(provider, &error))?;
    let status = response.status();
    let wait = retry_after(response.headers(), SystemTime::now());

    let body = response
        .bytes()
        .await
        .map_err(|error| transport_error(provider, &error))?;

    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|error| ProviderError::malformed(provider, &error.to_string()));
    }
    let detail = error_message(&body).and_then(|message| clean_detail(&message, secret));
    Err(ProviderError::from_status(
        provider,
        status.as_u16(),
        wait,
        detail.as_deref(),
    ))
}

/// Turns a failure below HTTP into an error, logging the cause chain (which
/// holds neither headers nor keys) for operators.
fn transport_error(provider: Provider, error: &reqwest::Error) -> ProviderError {
    tracing::debug!(%provider, cause = %cause_chain(error), "provider request failed");

    if error.is_timeout() {
        ProviderError::transport(provider, true, "the connection timed out")
    } else if error.is_connect() {
        ProviderError::transport(provider, false, "the connection failed")
    } else if error.is_body() || error.is_decode() {
        ProviderError::transport(provider, false, "the reply was cut off")
    } else {
        ProviderError::transport(provider, false, "the request failed")
    }
}

fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The wait a reply asks for. OpenAI's `retry-after-ms` is the more precise
/// of its two hints; `Retry-After` is delta-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };

    // `try_from` refuses negative, NaN and absurd values instead of panicking.
    let precise = header("retry-after-ms")
        .and_then(|value| value.parse::<f64>().ok())
        .and_then(|millis| Duration::try_from_secs_f64(millis / 1000.0).ok());
    precise.or_else(|| header(RETRY_AFTER.as_str()).and_then(|value| parse_retry_after(value, now)))
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }

    let at = httpdate::parse_http_date(value).ok()?;
    // A date already past means "now", not "no hint".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The message of an error body: both providers put it at `error.message`;
/// compatible servers sometimes use `message` or a bare `error` string.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let found = value
        .pointer("/error/message")
        .or_else(|| value.get("message"))
        .or_else(|| value.get("error"))?;
    found.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        map
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        let found = retry_after(&headers(&[("retry-after", "7")]), SystemTime::now());

        assert_eq!(found, Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_as_a_date_is_the_time_until_then() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));

        let found = retry_after(&headers(&[("retry-after", &later)]), now);

        assert_eq!(found, Some(Duration::from_secs(90)));
    }

    #[test]
    fn retry_after_in_the_past_means_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));

        let found = retry_after(&headers(&[("retry-after", &earlier)]), now);

        assert_eq!(found, Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let pairs = [("retry-after", "2"), ("retry-after-ms", "1500")];

        let found = retry_after(&headers(&pairs), SystemTime::now());

        assert_eq!(found, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn absurd_retry_after_ms_falls_back_to_retry_after() {
        let pairs = [("retry-after", "2"), ("retry-after-ms", "1e300")];

        let found = retry_after(&headers(&pairs), SystemTime::now());

        assert_eq!(found, Some(Duration::from_secs(2)));
    }

    #[test]
    fn unreadable_retry_after_is_no_hint() {
        let found = retry_after(&headers(&[("retry-after", "soon")]), SystemTime::now());

        assert_eq!(found, None);
    }

    #[test]
    fn error_messages_are_found_in_either_providers_body() {
        let openai = br#"{"error":{"message":"Bad key","type":"invalid_request_error"}}"#;
        let anthropic = br#"{"type":"error","error":{"type":"api_error","message":"Oops"}}"#;

        assert_eq!(error_message(openai).as_deref(), Some("Bad key"));
        assert_eq!(error_message(anthropic).as_deref(), Some("Oops"));
        assert_eq!(error_message(b"<html>502</html>"), None);
    }
}
