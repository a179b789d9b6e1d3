//! `{ref}` path segments: an id or a name.

use uuid::Uuid;

/// What a `{ref}` path segment names. Names may never parse as UUIDs, so the
/// two readings cannot collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// The segment parsed as a UUID, in any of its forms.
    Id(Uuid),
    /// Anything else: an exact, case-sensitive name.
    Name(String),
}

impl Ref {
    /// Reads a path segment.
    pub fn parse(segment: &str) -> Self {
        match uuid_in_any_form(segment) {
            Some(id) => Ref::Id(id),
            None => Ref::Name(segment.to_owned()),
        }
    }
}

/// The UUID `text` spells, in any form a client's library may print:
/// hyphenated or 32 hex digits, either of them braced or behind `urn:uuid:`
/// (any case), with hyphens anywhere. Broader than the `uuid` crate's
/// parser on purpose: what any client could take for an id must be one.
pub fn uuid_in_any_form(text: &str) -> Option<Uuid> {
    let text = strip_prefix_ignoring_case(text, "urn:");
    let text = strip_prefix_ignoring_case(text, "uuid:");
    let text = text
        .strip_prefix('{')
        .and_then(|inner| inner.strip_suffix('}'))
        .unwrap_or(text);
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(&digits).ok()
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_in_any_form_are_ids_and_the_rest_are_names() {
        let id = Uuid::now_v7();
        let simple = id.simple().to_string();
        let forms = [
            id.to_string(),
            simple.clone(),
            id.urn().to_string(),
            id.braced().to_string(),
            format!("{{{simple}}}"),
            format!("urn:uuid:{simple}"),
            format!("URN:UUID:{}", id.to_string().to_uppercase()),
            format!("{}-{}", &simple[..5], &simple[5..]),
        ];

        for form in forms {
            assert_eq!(Ref::parse(&form), Ref::Id(id), "{form}");
        }
        for name in ["web_search", "deadbeef", "{", "urn:uuid:", &simple[..31]] {
            assert_eq!(Ref::parse(name), Ref::Name(name.into()), "{name}");
        }
    }
}
