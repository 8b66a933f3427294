//! The two kinds of message the watcher reads, decoded strictly: a
//! [`Transition`] (on `PREFIX:events` and in the stream `PREFIX:transitions`)
//! and [`CountNews`] (on `PREFIX:counts`).
//!
//! Anyone with access to the Redis can publish on these channels, so every
//! payload is untrusted: decoding never panics, refuses anything longer than
//! [`MAX_MESSAGE_BYTES`] before parsing it, and checks every field's type and
//! the agent id's syntax (through [`AgentId`]'s `Deserialize`).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::agent_id::AgentId;
use crate::model::Transition;

/// The longest payload the watcher parses. A transition message is about
/// 250 bytes with a 128-byte agent id; anything beyond this is refused
/// unread.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// How many bytes of a refused payload a log line shows.
const SHOWN_BYTES: usize = 96;

/// News that an agent's fleet-wide failure count left zero or returned to
/// it without a transition: `{"agent_id":"a","generation":3,"failure_count":1}`
/// on `PREFIX:counts` (published by `lua/lib.lua`'s `save`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountNews {
    /// The agent whose count changed.
    pub agent_id: AgentId,
    /// The agent's generation when it changed.
    pub generation: u64,
    /// The failure count after the change.
    pub failure_count: u64,
}

/// Why a payload is not a message the watcher can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Longer than [`MAX_MESSAGE_BYTES`]; not parsed at all.
    #[error(
        "message is {len} bytes, more than the {MAX_MESSAGE_BYTES} a transition or count message can be"
    )]
    TooLarge {
        /// The payload's length in bytes.
        len: usize,
    },
    /// Not JSON text (bad syntax, not UTF-8, cut short, trailing bytes).
    #[error("message is not JSON: {detail}")]
    NotJson {
        /// What the JSON parser said.
        detail: String,
    },
    /// JSON, but not the expected object: a missing or unknown-typed field,
    /// an unknown state or reason, an invalid agent id, a negative or
    /// fractional count.
    #[error("message has the wrong fields: {detail}")]
    WrongFields {
        /// What the JSON parser said.
        detail: String,
    },
}

impl MessageError {
    /// Whether the payload was refused for its size alone.
    #[must_use]
    #[cfg(any(test, feature = "testing"))]
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// Decodes a transition message (DESIGN.md section 3).
///
/// Unknown extra fields are ignored, so a newer publisher may add some.
///
/// # Errors
///
/// [`MessageError`] when the payload is too large, not JSON, or not a
/// transition with a valid agent id, known states and reason, and unsigned
/// integer generation and times.
pub fn decode_transition(payload: &[u8]) -> Result<Transition, MessageError> {
    decode(payload)
}

/// Decodes a failure-count message of `PREFIX:counts`.
///
/// # Errors
///
/// [`MessageError`] when the payload is too large, not JSON, or not a
/// [`CountNews`] with a valid agent id and unsigned integer counts.
pub fn decode_counts(payload: &[u8]) -> Result<CountNews, MessageError> {
    decode(payload)
}

fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, MessageError> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { len: payload.len() });
    }
    serde_json::from_slice(payload).map_err(|e| {
        let detail = e.to_string();
        if e.is_data() {
            MessageError::WrongFields { detail }
        } else {
            MessageError::NotJson { detail }
        }
    })
}

/// A payload for a log line: its first bytes, lossily as text and escaped,
/// with the full length when cut.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = &self.0[..self.0.len().min(SHOWN_BYTES)];
        write!(f, "{:?}", String::from_utf8_lossy(head))?;
        if head.len() < self.0.len() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_cuts_long_payloads_and_escapes_control_bytes() {
        let long = vec![b'x'; 1000];
        let text = Shown(&long).to_string();
        assert!(text.len() < 200, "{text}");
        assert!(text.ends_with("(1000 bytes)"), "{text}");
        assert_eq!(Shown(b"a\nb").to_string(), "\"a\\nb\"");
        // Cutting in the middle of a UTF-8 sequence does not panic.
        let mut multi = vec![b'a'; SHOWN_BYTES - 1];
        multi.extend_from_slice("é".as_bytes());
        let _ = Shown(&multi).to_string();
    }

    #[test]
    fn errors_say_which_kind_of_wrong() {
        assert!(matches!(
            decode_counts(b"nope"),
            Err(MessageError::NotJson { .. })
        ));
        assert!(matches!(
            decode_counts(b"{}"),
            Err(MessageError::WrongFields { .. })
        ));
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(decode_counts(&big).is_err_and(|e| e.is_too_large()));
    }
}
