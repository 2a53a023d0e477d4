//! Text fields: trimming, names, addresses, Chargebee's length limits and ids.

/// A free-text value as the engine stores it: trimmed, and `None` when nothing is left, so that
/// `""`, `"  "` and a missing field compare equal. Inner text is kept as typed.
pub fn clean(s: Option<&str>) -> Option<String> {
    let s = s?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The form in which e-mail addresses are compared and matched. Both systems treat addresses
/// case-insensitively in practice, whatever RFC 5321 allows for the local part.
pub fn email_key(s: &str) -> String {
    s.trim().to_lowercase()
}

/// webCRM's one name field to Chargebee's first and last name, split at the last whitespace:
/// middle names stay with the first name. A single word is taken as the last name.
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.rfind(char::is_whitespace) {
        None if full.is_empty() => (None, None),
        None => (None, Some(full.to_string())),
        Some(at) => {
            let first = full[..at].trim_end();
            let last = full[at..].trim_start();
            (Some(first.to_string()), Some(last.to_string()))
        }
    }
}

/// Chargebee's first and last name to one name: trimmed parts joined by one space.
pub fn join_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// webCRM's one address field (lines separated by LF, CRLF or CR) to Chargebee's `line1` and
/// `line2`: the first non-empty line, then the remaining non-empty lines joined by ", ".
pub fn split_address(address: &str) -> (Option<String>, Option<String>) {
    let mut lines = address
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let line1 = lines.next().map(str::to_string);
    let rest: Vec<&str> = lines.collect();
    let line2 = (!rest.is_empty()).then(|| rest.join(", "));
    (line1, line2)
}

/// A value longer than Chargebee accepts for its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` is {len} characters; Chargebee accepts at most {max}")]
pub struct LimitExceeded {
    pub field: &'static str,
    pub max: usize,
    pub len: usize,
}

/// Checks a value against Chargebee's limit for `field`, counted in characters as Chargebee
/// counts them, not bytes. A missing value always fits.
pub fn check_len(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<(), LimitExceeded> {
    let len = value.map_or(0, |v| v.chars().count());
    if len > max {
        Err(LimitExceeded { field, max, len })
    } else {
        Ok(())
    }
}

/// The first `max` characters of `value`, cut on a character boundary (a combining mark may
/// still be separated from its base letter).
pub fn truncate_chars(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((at, _)) => value[..at].to_string(),
        None => value.to_string(),
    }
}

/// A Chargebee id derived from `raw`: ASCII letters, digits, `-` and `_` are kept, every run of
/// other characters becomes one `-`, and `-` is trimmed from both ends. `None` when nothing is
/// left or the result is longer than `max`, since a shortened id could collide with another.
pub fn sanitize_id(raw: &str, max: usize) -> Option<String> {
    let mut id = String::with_capacity(raw.len());
    let mut in_run = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            id.push(c);
            in_run = false;
        } else if !in_run {
            id.push('-');
            in_run = true;
        }
    }
    let id = id.trim_matches('-');
    (!id.is_empty() && id.len() <= max).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn clean_trims_and_drops_blank() {
        assert_eq!(clean(None), None);
        assert_eq!(clean(Some("")), None);
        assert_eq!(clean(Some(" \t\r\n ")), None);
        assert_eq!(clean(Some("  Acme  A/S ")), s("Acme  A/S"));
        assert_eq!(clean(Some("x")), s("x"));
    }

    #[test]
    fn email_key_trims_and_lower_cases() {
        assert_eq!(
            email_key("  Anna.Jensen@Example.DK "),
            "anna.jensen@example.dk"
        );
        assert_eq!(email_key("ÅSE@EXAMPLE.NO"), "åse@example.no");
        assert_eq!(email_key(""), "");
    }

    #[test]
    fn split_name_at_the_last_space() {
        assert_eq!(split_name("Anna Jensen"), (s("Anna"), s("Jensen")));
        assert_eq!(
            split_name("Anna Marie Jensen"),
            (s("Anna Marie"), s("Jensen"))
        );
        assert_eq!(split_name("  Anna   Jensen "), (s("Anna"), s("Jensen")));
        assert_eq!(split_name("Anna\tJensen"), (s("Anna"), s("Jensen")));
        assert_eq!(split_name("Madonna"), (None, s("Madonna")));
        assert_eq!(split_name(" Madonna "), (None, s("Madonna")));
        assert_eq!(split_name(""), (None, None));
        assert_eq!(split_name("   "), (None, None));
        assert_eq!(
            split_name("Søren Ørsted-Æbelø"),
            (s("Søren"), s("Ørsted-Æbelø"))
        );
    }

    #[test]
    fn join_name_trims_parts() {
        assert_eq!(join_name(Some("Anna"), Some("Jensen")), s("Anna Jensen"));
        assert_eq!(
            join_name(Some(" Anna "), Some(" Jensen ")),
            s("Anna Jensen")
        );
        assert_eq!(join_name(Some("Anna"), None), s("Anna"));
        assert_eq!(join_name(Some(""), Some("Jensen")), s("Jensen"));
        assert_eq!(join_name(None, Some("Jensen")), s("Jensen"));
        assert_eq!(join_name(Some(" "), Some("")), None);
        assert_eq!(join_name(None, None), None);
    }

    #[test]
    fn split_address_into_two_lines() {
        assert_eq!(split_address("Vestergade 1"), (s("Vestergade 1"), None));
        assert_eq!(
            split_address("Vestergade 1\n2. sal"),
            (s("Vestergade 1"), s("2. sal"))
        );
        assert_eq!(
            split_address("\r\n Vestergade 1 \r\n\r\n2. sal\r\nc/o Jensen\r\n"),
            (s("Vestergade 1"), s("2. sal, c/o Jensen"))
        );
        assert_eq!(split_address("a\rb"), (s("a"), s("b")));
        assert_eq!(split_address(""), (None, None));
        assert_eq!(split_address(" \n \r\n "), (None, None));
    }

    #[test]
    fn limits_count_characters() {
        assert_eq!(check_len("first_name", None, 3), Ok(()));
        assert_eq!(check_len("first_name", Some("abc"), 3), Ok(()));
        assert_eq!(check_len("first_name", Some("æøå"), 3), Ok(()));
        let err = check_len("first_name", Some("æøåx"), 3).unwrap_err();
        assert_eq!(
            err,
            LimitExceeded {
                field: "first_name",
                max: 3,
                len: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "`first_name` is 4 characters; Chargebee accepts at most 3"
        );
    }

    #[test]
    fn truncate_on_characters() {
        assert_eq!(truncate_chars("æøåx", 3), "æøå");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abc", 10), "abc");
        assert_eq!(truncate_chars("abc", 0), "");
        assert_eq!(truncate_chars("", 2), "");
    }

    #[test]
    fn sanitize_ids() {
        assert_eq!(sanitize_id("wcrm-123_a", 50), s("wcrm-123_a"));
        assert_eq!(sanitize_id("Acme A/S", 50), s("Acme-A-S"));
        assert_eq!(sanitize_id("  Søren  Ås!! ", 50), s("S-ren-s"));
        assert_eq!(sanitize_id("--abc--", 50), s("abc"));
        assert_eq!(sanitize_id("#1", 50), s("1"));
        assert_eq!(sanitize_id("a - b", 50), s("a---b"));
        assert_eq!(sanitize_id("", 50), None);
        assert_eq!(sanitize_id("æøå", 50), None);
        assert_eq!(sanitize_id("---", 50), None);
        assert_eq!(sanitize_id("abcd", 4), s("abcd"));
        assert_eq!(sanitize_id("abcde", 4), None);
        assert_eq!(sanitize_id(" abcd ", 4), s("abcd"));
    }

    proptest! {
        #[test]
        fn join_undoes_split(name in "[A-Za-zÀ-ÿ'.-]{1,12}( [A-Za-zÀ-ÿ'.-]{1,12}){0,4}") {
            let (first, last) = split_name(&name);
            prop_assert_eq!(join_name(first.as_deref(), last.as_deref()), Some(name));
        }

        #[test]
        fn split_keeps_every_non_space_character(name in "\\PC{0,40}") {
            let (first, last) = split_name(&name);
            let kept: String = [first, last]
                .into_iter()
                .flatten()
                .collect::<String>()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let expected: String = name.chars().filter(|c| !c.is_whitespace()).collect();
            prop_assert_eq!(kept, expected);
        }

        #[test]
        fn sanitized_ids_are_valid(raw in "\\PC{0,40}", max in 1usize..50) {
            if let Some(id) = sanitize_id(&raw, max) {
                prop_assert!(!id.is_empty() && id.len() <= max);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                prop_assert!(!id.starts_with('-') && !id.ends_with('-'));
            }
        }

        #[test]
        fn truncation_respects_the_limit(value in "\\PC{0,40}", max in 0usize..50) {
            let cut = truncate_chars(&value, max);
            prop_assert!(cut.chars().count() <= max);
            prop_assert!(value.starts_with(&cut));
            prop_assert_eq!(check_len("f", Some(&cut), max), Ok(()));
        }
    }
}
