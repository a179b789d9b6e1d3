//! Strict extractors: JSON bodies, query strings and `{ref}` path segments.
//!
//! They enforce the contract's order of checks for what a request carries:
//! 415 (not declared JSON), 413 (over 1 MiB), 400 (not JSON), then 422 for
//! anything the body or query says wrong: unknown, repeated, missing or
//! `null` fields, bad values, a body that is not an object, U+0000, query
//! parameters a route does not take. A 422 names the offending field by its
//! path (`tool_ids[1]`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::Uri;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use domain::reference::uuid_in_any_form;
use domain::{FieldError, Ref};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ApiError;

/// The largest body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body, checked strictly and deserialized into `T`.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !declares_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Answered before reading: a client announcing 5 MB and sending
        // nothing must not hold the request open while we wait for it.
        if declares_too_much(&request) {
            return Err(ApiError::PayloadTooLarge);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|error| not_json(&error))?;
        if !value.is_object() {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        if let Some(field) = repeated_field(&bytes) {
            return Err(ApiError::invalid(field, "is given more than once"));
        }
        from_value(value).map(Json)
    }
}

/// A body the parser refused: broken JSON is a 400, but JSON nested deeper
/// than the parser's limit of 128 levels is valid, only more than we take.
fn not_json(error: &serde_json::Error) -> ApiError {
    if error.to_string().starts_with("recursion limit exceeded") {
        return ApiError::invalid("body", "nests arrays and objects over 128 levels deep");
    }
    ApiError::MalformedJson(format!(
        "The body is not valid JSON ({error}); fix its syntax."
    ))
}

/// The first top-level field of a JSON object given twice. A [`Value`]
/// keeps only the last of the two, so they are looked for in the text.
fn repeated_field(bytes: &[u8]) -> Option<String> {
    struct Repeated(Option<String>);

    impl<'de> Deserialize<'de> for Repeated {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(Repeated(None))
        }
    }

    impl<'de> serde::de::Visitor<'de> for Repeated {
        type Value = Repeated;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Repeated, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut repeated = None;
            while let Some(field) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if repeated.is_none() && !seen.insert(field.clone()) {
                    repeated = Some(field);
                }
            }
            Ok(Repeated(repeated))
        }
    }

    serde_json::from_slice::<Repeated>(bytes).ok()?.0
}

fn declares_too_much(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > BODY_LIMIT as u64)
}

/// The body is declared plain JSON: one `Content-Type`, of JSON itself,
/// and no content coding (a gzip body we did not unpack is not JSON).
fn declares_json(request: &Request) -> bool {
    let headers = request.headers();
    let encoded = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|coding| !coding.is_empty() && !coding.as_bytes().eq_ignore_ascii_case(b"identity"));
    let mut content_types = headers.get_all(CONTENT_TYPE).iter();
    let (Some(content_type), None) = (content_types.next(), content_types.next()) else {
        return false;
    };
    !encoded && content_type.to_str().is_ok_and(is_json_in_utf8)
}

/// `application/json`, with no charset but UTF-8. Only JSON itself: a
/// `+json` type such as merge-patch promises semantics this API does not
/// implement; and a body declared in another charset would be misread.
fn is_json_in_utf8(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|parameter| {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            !name.trim().eq_ignore_ascii_case("charset")
                || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        ApiError::invalid_fields(vec![field_error(&path, &error.into_inner().to_string())])
    })
}

/// Turns serde's message into a field path and a sentence a client can act on.
fn field_error(path: &str, message: &str) -> FieldError {
    if let Some(field) = quoted_after(message, "missing field `") {
        return FieldError::new(join(path, &field), "is required");
    }
    if let Some(field) = quoted_after(message, "unknown field `") {
        let hint = if field == "tenant_id" {
            "is not accepted: the tenant comes from your X-API-Key".to_owned()
        } else {
            "is not a field of this request; remove it".to_owned()
        };
        return FieldError::new(join(path, &field), hint);
    }
    if let Some(field) = quoted_after(message, "duplicate field `") {
        return FieldError::new(join(path, &field), "is given more than once");
    }
    let field = if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    FieldError::new(field, friendly(message))
}

fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The full path of `field` under `path`; serde sometimes already put the
/// field on the path (unknown fields), sometimes not (missing ones).
fn join(path: &str, field: &str) -> String {
    if path == "." || path.is_empty() {
        field.to_owned()
    } else if path == field || path.ends_with(&format!(".{field}")) {
        path.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// serde's wording names Rust types; say what the client should send.
fn friendly(message: &str) -> String {
    // `present` says exactly this of an optional field; serde adds what it
    // expected for a required one.
    if message == NULL_OPTIONAL {
        return "must not be null; leave the field out instead".to_owned();
    }
    if message.starts_with("invalid type: null") {
        return "must not be null; it is required".to_owned();
    }
    if message.contains("UUID parsing failed")
        || message.contains("invalid character") && message.contains("UUID")
    {
        return "must be a UUID".to_owned();
    }
    if message.starts_with("invalid digit") || message.starts_with("cannot parse integer") {
        return "must be a whole number".to_owned();
    }
    if message.starts_with("invalid type:") {
        let expected = message.rsplit("expected ").next().unwrap_or("another type");
        return format!("has the wrong type; expected {expected}");
    }
    message.to_owned()
}

/// What [`present`] reports of a `null`.
const NULL_OPTIONAL: &str = "invalid type: null";

/// A field that may be left out but never given as `null`:
/// `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct NotNull<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for NotNull<T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a value other than null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom(NULL_OPTIONAL))
        }

        fn visit_some<D2: Deserializer<'de>>(
            self,
            deserializer: D2,
        ) -> Result<Self::Value, D2::Error> {
            T::deserialize(deserializer).map(Some)
        }
    }

    deserializer.deserialize_option(NotNull(std::marker::PhantomData))
}

/// A query string, deserialized strictly into `T`: unknown or repeated
/// parameters are a 422, like anything that does not parse.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::invalid(
                name.replace('\0', ""),
                "must not contain U+0000",
            ));
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                ApiError::invalid_fields(vec![field_error(&path, &error.into_inner().to_string())])
            })
    }
}

/// A whole-number query parameter whose range is checked afterwards. Too
/// many digits for a `u32` read as `u32::MAX` and a negative number as 0,
/// so that the range check, not the parser, tells the client what is
/// allowed: `#[serde(default, deserialize_with = "whole_number")]`.
pub fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text.as_str()),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(serde::de::Error::custom("must be a whole number"));
    }
    if negative {
        return Ok(Some(0));
    }
    Ok(Some(digits.parse().unwrap_or(u32::MAX)))
}

/// For routes that take no query parameters: any given is unknown, a 422
/// naming each. Handlers call it themselves, after their body is read, so
/// that a 415, 413 or 400 still comes first.
pub fn no_query(uri: &Uri) -> Result<(), ApiError> {
    let query = uri.query().unwrap_or_default();
    let errors: Vec<FieldError> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| FieldError::new(name, "is not a parameter of this route; remove it"))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}

/// A `{ref}` path segment: an id or a name. U+0000 is a 422; a segment that
/// is not even UTF-8 names nothing, a 404. Both wait for [`PathRef::read`],
/// which handlers call once the body and query are checked: those come
/// first in the contract's order.
pub struct PathRef(Result<Ref, ApiError>);

impl PathRef {
    /// The reference, or why the segment cannot be one.
    pub fn read(self) -> Result<Ref, ApiError> {
        self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathRef {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let segment = path_segment(parts, state, "ref").await;
        Ok(PathRef(segment.map(|segment| Ref::parse(&segment))))
    }
}

/// An `{id}` path segment that must be a UUID: anything else names nothing.
/// Like [`PathRef`], its errors wait for [`PathId::read`].
pub struct PathId(Result<Option<uuid::Uuid>, ApiError>);

impl PathId {
    /// The id, `None` if the segment is no UUID, or why it cannot be read.
    pub fn read(self) -> Result<Option<uuid::Uuid>, ApiError> {
        self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let segment = path_segment(parts, state, "id").await;
        Ok(PathId(segment.map(|segment| uuid_in_any_form(&segment))))
    }
}

/// The one path parameter, named `name` in the route, as text.
async fn path_segment<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<String, ApiError> {
    let axum::extract::Path(segment) =
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::NotFound(format!("Nothing has that {name}: it is not valid UTF-8."))
            })?;
    if segment.contains('\0') {
        return Err(ApiError::invalid(name, "must not contain U+0000"));
    }
    Ok(segment)
}
