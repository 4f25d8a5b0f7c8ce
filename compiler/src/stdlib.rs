//! The standard library: modules written in the language itself, embedded in the binary so
//! `use NAME;` works wherever bloomc runs.

pub const LIBRARIES: &[(&str, &str)] =
    &[("kvs", include_str!("../../stdlib/kvs.bl")), ("pubsub", include_str!("../../stdlib/pubsub.bl"))];

pub fn source(name: &str) -> Option<&'static str> {
    LIBRARIES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
