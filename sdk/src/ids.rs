//! Document id rules, shared by the host and plugins so both refuse the same
//! ids.

/// Longest accepted auth id, in bytes.
pub const MAX_ID_LEN: usize = 1024;
/// Longest accepted path segment, in bytes (common filesystem limit).
pub const MAX_SEGMENT_LEN: usize = 255;

/// Why an auth id was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdProblem {
    Empty,
    TooLong,
    Absolute,
    Backslash,
    ControlCharacter,
    EmptySegment,
    DotSegment,
    SegmentTooLong,
    /// A cooldown id that does not end in `.cds`.
    NotCooldown,
}

impl std::fmt::Display for IdProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            IdProblem::Empty => "it is empty",
            IdProblem::TooLong => "it is longer than 1024 bytes",
            IdProblem::Absolute => "it is an absolute path",
            IdProblem::Backslash => "it contains a backslash",
            IdProblem::ControlCharacter => "it contains NUL or another control character",
            IdProblem::EmptySegment => "it has an empty path segment",
            IdProblem::DotSegment => "it has a `.` or `..` segment",
            IdProblem::SegmentTooLong => "a path segment is longer than 255 bytes",
            IdProblem::NotCooldown => "a cooldown id must end in `.cds`",
        };
        f.write_str(text)
    }
}

/// Checks that an auth id is a safe relative slash path that stays inside
/// `auths/`.
pub fn check_auth_id(id: &str) -> Result<(), IdProblem> {
    if id.is_empty() {
        return Err(IdProblem::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdProblem::TooLong);
    }
    if id.starts_with('/') || has_drive_prefix(id) {
        return Err(IdProblem::Absolute);
    }
    if id.contains('\\') {
        return Err(IdProblem::Backslash);
    }
    if id.chars().any(char::is_control) {
        return Err(IdProblem::ControlCharacter);
    }
    for segment in id.split('/') {
        match segment {
            "" => return Err(IdProblem::EmptySegment),
            "." | ".." => return Err(IdProblem::DotSegment),
            s if s.len() > MAX_SEGMENT_LEN => return Err(IdProblem::SegmentTooLong),
            _ => {}
        }
    }
    Ok(())
}

/// Suffix of the proxy's cooldown state files (matched in any case).
pub const COOLDOWN_SUFFIX: &str = ".cds";

/// True for an id the proxy writes as cooldown state: `*.cds`, any case.
/// Under `auths/` these are cooldown documents, never auths.
pub fn is_cooldown_id(id: &str) -> bool {
    ends_with_ignoring_case(id, COOLDOWN_SUFFIX)
}

/// Checks a cooldown document's id: an auth-dir path ending in `.cds`.
pub fn check_cooldown_id(id: &str) -> Result<(), IdProblem> {
    check_auth_id(id)?;
    match is_cooldown_id(id) {
        true => Ok(()),
        false => Err(IdProblem::NotCooldown),
    }
}

/// `id` ends with `suffix`, ASCII case ignored (as the proxy matches
/// `.json` and `.cds`).
pub fn ends_with_ignoring_case(id: &str, suffix: &str) -> bool {
    let (id, suffix) = (id.as_bytes(), suffix.as_bytes());
    id.len() >= suffix.len() && id[id.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

fn has_drive_prefix(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_nested_and_unicode_ids() {
        for id in [
            "a.json",
            "team/claude-a@b.com.json",
            "日本/ключ.json",
            "..a.json",
        ] {
            assert_eq!(check_auth_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_escapes_and_tricks() {
        let cases = [
            ("", IdProblem::Empty),
            ("../x", IdProblem::DotSegment),
            ("a/../../x", IdProblem::DotSegment),
            ("./x", IdProblem::DotSegment),
            ("/etc/passwd", IdProblem::Absolute),
            ("C:x", IdProblem::Absolute),
            ("a\\..\\x", IdProblem::Backslash),
            ("a\0b", IdProblem::ControlCharacter),
            ("a//b", IdProblem::EmptySegment),
            ("a/", IdProblem::EmptySegment),
        ];
        for (id, problem) in cases {
            assert_eq!(check_auth_id(id), Err(problem), "{id:?}");
        }
        assert_eq!(
            check_auth_id(&"a".repeat(256)),
            Err(IdProblem::SegmentTooLong)
        );
        assert_eq!(check_auth_id(&"a/".repeat(600)), Err(IdProblem::TooLong));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::path::{Component, Path};

        /// Segments that are plain, tricky, or hostile, joined by slashes
        /// (sometimes doubled, sometimes backslashes).
        fn id_like() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                "[a-zA-Z0-9@._-]{1,12}",
                Just(".".to_string()),
                Just("..".to_string()),
                Just("...".to_string()),
                Just(String::new()),
                Just("C:".to_string()),
                Just("a\\b".to_string()),
                Just("nul\u{0}".to_string()),
                Just("\u{7f}".to_string()),
                "\\PC{1,4}",
                "a{250,260}",
            ];
            (prop::collection::vec(segment, 1..6), prop::bool::ANY).prop_map(
                |(segments, leading_slash)| {
                    let id = segments.join("/");
                    match leading_slash {
                        true => format!("/{id}"),
                        false => id,
                    }
                },
            )
        }

        proptest! {
            #[test]
            fn an_accepted_id_is_a_plain_relative_path(id in prop_oneof![id_like(), any::<String>()]) {
                if check_auth_id(&id).is_ok() {
                    let components: Vec<_> = Path::new(&id).components().collect();
                    prop_assert!(components.iter().all(|c| matches!(c, Component::Normal(_))), "{id:?}");
                    prop_assert_eq!(components.len(), id.split('/').count());
                    prop_assert!(id.len() <= MAX_ID_LEN);
                    prop_assert!(!id.chars().any(char::is_control));
                    let joined = Path::new("/ws/auths").join(&id);
                    prop_assert!(joined.starts_with("/ws/auths"));
                }
            }

            #[test]
            fn a_dot_or_empty_segment_anywhere_is_refused(
                segments in prop::collection::vec("[a-z0-9.]{1,8}", 0..4),
                at in 0usize..4,
                bad in prop_oneof![Just(""), Just("."), Just("..")],
            ) {
                let mut segments = segments;
                segments.insert(at.min(segments.len()), bad.to_string());
                let id = segments.join("/");
                prop_assert!(check_auth_id(&id).is_err(), "{id:?}");
            }
        }
    }
}
