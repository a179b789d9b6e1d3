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
        match Uuid::try_parse(segment) {
            Ok(id) => Ref::Id(id),
            Err(_) => Ref::Name(segment.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_in_any_form_are_ids_and_the_rest_are_names() {
        let id = Uuid::now_v7();
        assert_eq!(Ref::parse(&id.simple().to_string()), Ref::Id(id));
        assert_eq!(Ref::parse(&id.urn().to_string()), Ref::Id(id));
        assert_eq!(Ref::parse("web_search"), Ref::Name("web_search".into()));
    }
}
