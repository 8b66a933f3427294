//! `AgentId`: 1 to 128 bytes of `[A-Za-z0-9._:@/-]`, refused otherwise
//! before any Redis key is built.

use fleet_breaker::agent_id::{AGENT_ID_RULE, MAX_AGENT_ID_LEN};
use fleet_breaker::{AgentId, AgentIdError};

#[test]
fn ids_of_allowed_characters_are_accepted_as_given() {
    for id in [
        "a",
        "agent-1",
        "model.server_01:8080",
        "gpu@eu-west/1",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/-",
    ] {
        let agent = AgentId::new(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        assert_eq!(agent.as_str(), id);
    }
}

#[test]
fn an_id_of_exactly_128_bytes_is_accepted() {
    assert_eq!(MAX_AGENT_ID_LEN, 128);
    let id = "a".repeat(128);
    assert_eq!(AgentId::new(&id).map(|a| a.as_str().len()), Ok(128));
}

#[test]
fn an_id_of_129_bytes_is_refused_as_too_long() {
    let id = "a".repeat(129);
    assert_eq!(AgentId::new(&id), Err(AgentIdError::TooLong { len: 129 }));
}

#[test]
fn an_empty_id_is_refused() {
    assert_eq!(AgentId::new(""), Err(AgentIdError::Empty));
}

#[test]
fn braces_spaces_wildcards_control_bytes_and_non_ascii_are_refused_at_their_offset() {
    for (id, found, index) in [
        ("{a}", '{', 0),
        ("a}", '}', 1),
        ("agent 1", ' ', 5),
        ("agent*", '*', 5),
        ("a?b", '?', 1),
        ("line\nbreak", '\n', 4),
        ("nul\0", '\0', 3),
        ("tab\t", '\t', 3),
        ("del\u{7f}", '\u{7f}', 3),
        ("agént", 'é', 2),
        ("agent-\u{1F600}", '\u{1F600}', 6),
    ] {
        assert_eq!(
            AgentId::new(id),
            Err(AgentIdError::InvalidChar { found, index }),
            "{id:?}"
        );
    }
}

#[test]
fn length_is_counted_in_bytes_not_characters() {
    // 65 two-byte characters: 130 bytes.
    let id = "é".repeat(65);
    assert_eq!(AgentId::new(&id), Err(AgentIdError::TooLong { len: 130 }));
}

#[test]
fn every_error_message_states_the_rule() {
    for bad in ["", "{a}", &"a".repeat(129)] {
        let err = AgentId::new(bad).expect_err("invalid");
        assert!(err.to_string().contains(AGENT_ID_RULE), "{err}");
    }
}

#[test]
fn display_from_str_and_try_from_agree() {
    let agent = AgentId::new("pod-7.agent:1").expect("valid");
    assert_eq!(agent.to_string(), "pod-7.agent:1");
    assert_eq!(agent.to_string().parse::<AgentId>(), Ok(agent.clone()));
    assert_eq!(AgentId::try_from("pod-7.agent:1"), Ok(agent.clone()));
    assert_eq!(AgentId::try_from(String::from("pod-7.agent:1")), Ok(agent));
    assert_eq!(
        "a b".parse::<AgentId>().map(|_| ()),
        Err(AgentIdError::InvalidChar {
            found: ' ',
            index: 1
        })
    );
}

#[test]
fn serde_round_trips_as_a_plain_string() {
    let agent = AgentId::new("gpu@eu-west/1").expect("valid");
    let text = serde_json::to_string(&agent).expect("serialises");
    assert_eq!(text, r#""gpu@eu-west/1""#);
    assert_eq!(serde_json::from_str::<AgentId>(&text).ok(), Some(agent));
}

#[test]
fn serde_refuses_invalid_ids_with_the_rule() {
    let too_long = format!("\"{}\"", "a".repeat(129));
    for json in [r#""""#, r#""{a}""#, r#""a b""#, too_long.as_str()] {
        let err = serde_json::from_str::<AgentId>(json).expect_err(json);
        assert!(err.to_string().contains(AGENT_ID_RULE), "{json}: {err}");
    }
}

/// The parser, fuzzed: any string (arbitrary Unicode, control bytes, up to
/// 10 kB) is accepted exactly when it follows the rule, and never panics.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn follows_the_rule(s: &str) -> bool {
        (1..=MAX_AGENT_ID_LEN).contains(&s.len())
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '/' | '-')
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024)
        ))]

        #[test]
        fn any_string_is_accepted_exactly_when_it_follows_the_rule(s in ".{0,300}|[A-Za-z0-9._:@/{}* -]{0,140}|\\PC{0,10000}") {
            let parsed = AgentId::new(&s);
            prop_assert_eq!(parsed.is_ok(), follows_the_rule(&s), "{:?}", parsed);
            if let Ok(id) = parsed {
                prop_assert_eq!(id.as_str(), s.as_str());
            }
        }

        #[test]
        fn arbitrary_bytes_through_serde_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = serde_json::from_slice::<AgentId>(&bytes);
        }
    }
}
