//! [`AdminToken`]: the secret that guards the admin routes.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use super::ApiError;

/// The shortest admin token accepted.
const MIN_TOKEN_LEN: usize = 16;

/// The admin token: compared in constant time, never printed. Its `Debug`
/// and `Display` show `"set"`, so a config or state holding it can be
/// logged whole.
#[derive(Clone)]
pub struct AdminToken(String);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// Shorter than 16 bytes: too easy to guess.
    #[error("the admin token must be at least {MIN_TOKEN_LEN} bytes long (it has {0})")]
    TooShort(usize),
    /// Whitespace or control characters, which no `Authorization` header carries intact.
    #[error("the admin token must be printable ASCII with no spaces")]
    NotPrintable,
}

impl AdminToken {
    /// Checks `token`: at least 16 bytes of printable ASCII, no spaces.
    ///
    /// # Errors
    ///
    /// [`AdminTokenError`] naming the rule broken (never the token).
    pub fn new(token: impl Into<String>) -> Result<Self, AdminTokenError> {
        let token = token.into();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotPrintable);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort(token.len()));
        }
        Ok(Self(token))
    }

    /// Whether `candidate` is the token, in time independent of where they differ.
    #[must_use]
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }

    /// Checks the `Authorization: Bearer <token>` of a request: 401 when it
    /// is missing, malformed or wrong.
    pub(super) fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized =
            |why: &str| ApiError::new(axum::http::StatusCode::UNAUTHORIZED, why.to_owned());
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("admin route: send Authorization: Bearer <admin token>"))?;
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                unauthorized("admin route: the Authorization header must be Bearer <admin token>")
            })?;
        if self.matches(presented.trim()) {
            Ok(())
        } else {
            Err(unauthorized("admin route: wrong admin token"))
        }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(set)")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("set")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_token() {
        let token = AdminToken::new("correct-horse-battery").unwrap();
        assert_eq!(format!("{token:?}"), "AdminToken(set)");
        assert_eq!(token.to_string(), "set");
    }

    #[test]
    fn short_or_unprintable_tokens_are_refused_without_echo() {
        assert_eq!(
            AdminToken::new("short").unwrap_err(),
            AdminTokenError::TooShort(5)
        );
        let err = AdminToken::new("has a space in it!!").unwrap_err();
        assert_eq!(err, AdminTokenError::NotPrintable);
        assert!(!err.to_string().contains("space in"));
        assert_eq!(
            AdminToken::new("tab\there-long-enough").unwrap_err(),
            AdminTokenError::NotPrintable
        );
    }

    #[test]
    fn matches_only_the_exact_token() {
        let token = AdminToken::new("0123456789abcdef").unwrap();
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches("0123456789abcde"));
        assert!(!token.matches("0123456789abcdef0"));
        assert!(!token.matches(""));
    }
}
