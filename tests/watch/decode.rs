//! The decoders on untrusted bytes: they never panic, they accept exactly
//! the messages that are valid, and what the publishers write round-trips.

use fleet_breaker::testing::{
    CountNews, MAX_MESSAGE_BYTES, MessageError, decode_counts, decode_transition,
};
use fleet_breaker::{AgentId, CircuitState, Transition, TransitionReason};
use proptest::prelude::*;

fn agent_id() -> impl Strategy<Value = AgentId> {
    "[A-Za-z0-9._:@/-]{1,128}"
        .prop_map(|s| AgentId::new(&s).expect("the regex only makes valid ids"))
}

fn state() -> impl Strategy<Value = CircuitState> {
    prop_oneof![
        Just(CircuitState::Closed),
        Just(CircuitState::Open),
        Just(CircuitState::HalfOpen),
        Just(CircuitState::ForcedOpen),
        Just(CircuitState::ForcedClosed),
    ]
}

fn reason() -> impl Strategy<Value = TransitionReason> {
    prop_oneof![
        Just(TransitionReason::FailureThreshold),
        Just(TransitionReason::BackoffElapsed),
        Just(TransitionReason::ProbeFailed),
        Just(TransitionReason::ProbesSucceeded),
        Just(TransitionReason::Reset),
        Just(TransitionReason::Forced),
        Just(TransitionReason::ForceCleared),
        Just(TransitionReason::ForceExpired),
    ]
}

fn transition() -> impl Strategy<Value = Transition> {
    (
        agent_id(),
        state(),
        state(),
        any::<u64>(),
        any::<u64>(),
        reason(),
        0u64..1 << 40,
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(agent_id, from, to, generation, at_ms, reason, backoff_ms, open_until_ms, epoch)| {
                Transition {
                    agent_id,
                    from,
                    to,
                    generation,
                    at_ms,
                    reason,
                    // As the model computes it, and as the scripts print it.
                    backoff_seconds: backoff_ms as f64 / 1000.0,
                    open_until_ms,
                    epoch,
                }
            },
        )
}

fn count_news() -> impl Strategy<Value = CountNews> {
    (agent_id(), any::<u64>(), any::<u64>()).prop_map(|(agent_id, generation, failure_count)| {
        CountNews {
            agent_id,
            generation,
            failure_count,
        }
    })
}

/// Byte edits of a valid message: overwrite, delete or insert at a place.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Delete(usize),
    Insert(usize, u8),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"{}[]\",:0123456789-.e{} \\".to_vec())
    ];
    let edit = prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Set(at, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Insert(at, b)),
    ];
    prop::collection::vec(edit, 1..6)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Set(at, b) if len > 0 => bytes[at % len] = b,
            Edit::Delete(at) if len > 0 => {
                bytes.remove(at % len);
            }
            Edit::Insert(at, b) => bytes.insert(at % (len + 1), b),
            _ => {}
        }
    }
    bytes
}

/// What "valid" means, independently of the decoder's code path: small
/// enough, and JSON of the right shape.
fn is_valid<T: serde::de::DeserializeOwned>(payload: &[u8]) -> bool {
    payload.len() <= MAX_MESSAGE_BYTES && serde_json::from_slice::<T>(payload).is_ok()
}

/// Every accepted transition holds a valid agent id and survives a round trip.
fn check_transition(payload: &[u8]) -> Result<(), TestCaseError> {
    let decoded = decode_transition(payload);
    prop_assert_eq!(decoded.is_ok(), is_valid::<Transition>(payload));
    if let Ok(t) = decoded {
        prop_assert!(AgentId::new(t.agent_id.as_str()).is_ok());
        prop_assert_eq!(decode_transition(&serde_json::to_vec(&t).unwrap()), Ok(t));
    }
    Ok(())
}

fn check_counts(payload: &[u8]) -> Result<(), TestCaseError> {
    let decoded = decode_counts(payload);
    prop_assert_eq!(decoded.is_ok(), is_valid::<CountNews>(payload));
    if let Ok(news) = decoded {
        prop_assert!(AgentId::new(news.agent_id.as_str()).is_ok());
        prop_assert_eq!(decode_counts(&serde_json::to_vec(&news).unwrap()), Ok(news));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_refused_unless_valid(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_transition(&bytes)?;
        check_counts(&bytes)?;
    }

    #[test]
    fn every_valid_transition_round_trips(t in transition()) {
        let payload = serde_json::to_vec(&t).unwrap();
        prop_assert!(payload.len() <= MAX_MESSAGE_BYTES);
        prop_assert_eq!(decode_transition(&payload), Ok(t));
        prop_assert!(decode_counts(&payload).is_err(), "a transition is not count news");
    }

    #[test]
    fn every_valid_count_news_round_trips(news in count_news()) {
        let payload = serde_json::to_vec(&news).unwrap();
        prop_assert_eq!(decode_counts(&payload), Ok(news));
        prop_assert!(decode_transition(&payload).is_err(), "count news is not a transition");
    }

    #[test]
    fn mutated_transitions_never_panic_and_are_accepted_only_if_still_valid(t in transition(), edits in edits()) {
        check_transition(&apply(serde_json::to_vec(&t).unwrap(), &edits))?;
    }

    #[test]
    fn mutated_count_news_never_panic_and_are_accepted_only_if_still_valid(news in count_news(), edits in edits()) {
        check_counts(&apply(serde_json::to_vec(&news).unwrap(), &edits))?;
    }

    #[test]
    fn a_bad_character_in_the_agent_id_is_refused(
        t in transition(),
        bad in prop::sample::select(vec!['{', '}', ' ', '*', '\n', '\u{0}', 'é', '"']),
        at in any::<prop::sample::Index>(),
    ) {
        let mut id = t.agent_id.as_str().to_owned();
        id.insert(at.index(id.len() + 1), bad);
        let mut value = serde_json::to_value(&t).unwrap();
        value["agent_id"] = serde_json::Value::String(id);
        let payload = serde_json::to_vec(&value).unwrap();
        let refused = matches!(decode_transition(&payload), Err(MessageError::WrongFields { .. }));
        prop_assert!(refused, "accepted agent id {:?}", value["agent_id"]);
    }
}

#[test]
fn the_scripts_message_formats_decode() {
    // As `lua/lib.lua` writes them.
    let t = br#"{"agent_id":"agent-1","from":"closed","to":"open","generation":1,"at_ms":1700000000000,"reason":"failure_threshold","backoff_seconds":1.5,"open_until_ms":1700000001500}"#;
    let t = decode_transition(t).expect("a script's transition");
    assert_eq!(
        (t.from, t.to, t.generation, t.backoff_seconds),
        (CircuitState::Closed, CircuitState::Open, 1, 1.5)
    );
    let whole = br#"{"agent_id":"a","from":"open","to":"half_open","generation":2,"at_ms":1,"reason":"backoff_elapsed","backoff_seconds":2.0,"open_until_ms":0}"#;
    assert_eq!(decode_transition(whole).unwrap().backoff_seconds, 2.0);
    let news = decode_counts(br#"{"agent_id":"a","generation":3,"failure_count":1}"#).unwrap();
    assert_eq!(
        (news.agent_id.as_str(), news.generation, news.failure_count),
        ("a", 3, 1)
    );
}

#[test]
fn oversized_payloads_are_refused_unparsed() {
    let valid =
        serde_json::to_vec(&serde_json::json!({"agent_id":"a","generation":3,"failure_count":1}))
            .unwrap();
    let mut padded = valid.clone();
    padded.extend(std::iter::repeat_n(
        b' ',
        MAX_MESSAGE_BYTES + 1 - valid.len(),
    ));
    assert!(
        serde_json::from_slice::<CountNews>(&padded).is_ok(),
        "valid JSON, only too long"
    );
    assert_eq!(
        decode_counts(&padded),
        Err(MessageError::TooLarge {
            len: MAX_MESSAGE_BYTES + 1
        })
    );
}

/// A decoded number is the number that was written, to the last bit: a
/// mutated message once decoded `1.001404894e42` one unit in the last place
/// away from the value it printed back (serde_json parses fast but not
/// always correctly rounded unless asked to).
#[test]
fn decoded_numbers_round_trip_exactly() {
    let payload = br#"{"agent_id":"a","from":"open","to":"open","generation":1,"at_ms":1,"reason":"reset","backoff_seconds":1.001404894e42,"open_until_ms":1,"epoch":1}"#;
    let t = decode_transition(payload).expect("a valid transition");
    assert_eq!(t.backoff_seconds, 1.001404894e42_f64);
    assert_eq!(decode_transition(&serde_json::to_vec(&t).unwrap()), Ok(t));
}
