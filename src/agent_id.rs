//! [`AgentId`]: a validated agent identifier, safe to put in a Redis key.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted agent id, in bytes.
pub const MAX_AGENT_ID_LEN: usize = 128;

/// The rule every agent id follows, for error messages.
pub const AGENT_ID_RULE: &str = "an agent id is 1 to 128 bytes of A-Z a-z 0-9 . _ : @ / -";

/// An agent identifier: 1 to 128 bytes of `[A-Za-z0-9._:@/-]`.
///
/// Every key of an agent embeds its id inside a hash tag (`{agent-1}`), so
/// braces, spaces, wildcards and control bytes are refused here, before any
/// key is built. Cloning is cheap (a shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(Arc<str>);

/// Why a string is not an [`AgentId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentIdError {
    /// The string is empty.
    #[error("agent id is empty; {AGENT_ID_RULE}")]
    Empty,
    /// The string is longer than [`MAX_AGENT_ID_LEN`] bytes.
    #[error("agent id is {len} bytes long; {AGENT_ID_RULE}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds a byte outside the allowed set.
    #[error("agent id has {found:?} at byte {index}; {AGENT_ID_RULE}")]
    InvalidChar {
        /// The first offending character.
        found: char,
        /// Its byte offset.
        index: usize,
    },
}

impl AgentId {
    /// Validates `id`.
    ///
    /// # Errors
    ///
    /// [`AgentIdError`] when `id` is empty, too long or holds a character
    /// outside `[A-Za-z0-9._:@/-]`.
    pub fn new(id: &str) -> Result<Self, AgentIdError> {
        if id.is_empty() {
            return Err(AgentIdError::Empty);
        }
        if id.len() > MAX_AGENT_ID_LEN {
            return Err(AgentIdError::TooLong { len: id.len() });
        }
        if let Some((index, found)) = id.char_indices().find(|&(_, c)| !is_allowed(c)) {
            return Err(AgentIdError::InvalidChar { found, index });
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '/' | '-')
}

impl FromStr for AgentId {
    type Err = AgentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for AgentId {
    type Error = AgentIdError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for AgentId {
    type Error = AgentIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}
