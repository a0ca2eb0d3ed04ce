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

/// The cooldown file (relative to the auth dir) the proxy keeps an auth's
/// state in, by its sanitising rule: a file auth (`team/a@b.com.json`)
/// keeps its directory and has its file name sanitised
/// (`team/a_b.com.cds`); any other id (`claude:apikey:3f2a`) is sanitised
/// whole, at the top level (`claude_apikey_3f2a.cds`). `None` when nothing
/// of the name survives.
pub fn cooldown_file_for(auth_id: &str) -> Option<String> {
    let auth_id = auth_id.trim();
    let is_file_auth = ends_with_ignoring_case(auth_id, ".json") && check_auth_id(auth_id).is_ok();
    let (dir, name) = match auth_id.rsplit_once('/') {
        Some((dir, name)) if is_file_auth => (Some(dir), name),
        _ => (None, auth_id),
    };
    let file = sanitised_cooldown_name(name)?;
    Some(match dir {
        Some(dir) => format!("{dir}/{file}"),
        None => file,
    })
}

/// Trim; drop the last `.ext`; each run outside `[A-Za-z0-9._-]` becomes
/// `_`; trim `._-` at both ends; append `.cds`.
fn sanitised_cooldown_name(name: &str) -> Option<String> {
    let name = name.trim();
    let stem = match name.rfind('.') {
        Some(dot) => &name[..dot],
        None => name,
    };
    let mut out = String::with_capacity(stem.len());
    let mut in_run = false;
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    let trimmed = out.trim_matches(['.', '_', '-']);
    (!trimmed.is_empty()).then(|| format!("{trimmed}{COOLDOWN_SUFFIX}"))
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
    fn cooldown_files_are_named_as_the_proxy_names_them() {
        for (auth_id, file) in [
            ("a@b.com.json", "a_b.com.cds"),
            ("team/a@b.com.json", "team/a_b.com.cds"),
            (
                "claude:apikey:3f2a9c1b7d4e",
                "claude_apikey_3f2a9c1b7d4e.cds",
            ),
            ("a@b.com", "a_b.cds"),
            ("  spaced name.json ", "spaced_name.cds"),
            ("x/y/z@@q.JSON", "x/y/z_q.cds"),
            ("-lead.json", "lead.cds"),
        ] {
            assert_eq!(
                cooldown_file_for(auth_id).as_deref(),
                Some(file),
                "{auth_id}"
            );
        }
        assert_eq!(cooldown_file_for("@@@"), None);
        assert_eq!(cooldown_file_for(".json"), None);
        // An id that could not be a file is named whole, never as a path.
        assert_eq!(cooldown_file_for("../x.json").as_deref(), Some("x.cds"));
    }

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
