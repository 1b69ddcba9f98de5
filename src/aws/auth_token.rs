//! An ECR authorization token: decoding it and deciding when it needs a refresh.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// ECR tokens live 12 hours.
pub const TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(12);
/// Never refresh sooner than this after a fetch, whatever the expiry says.
pub const MIN_REFRESH_INTERVAL: SignedDuration = SignedDuration::from_secs(5);

/// The password half of an ECR token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; call only where it is written into a secret or printed on request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A decoded authorization token, shared by every registry of one identity and region.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthToken {
    pub username: String,
    pub password: Password,
    /// Account of the credentials, from the proxy endpoint.
    pub account: Option<String>,
    pub fetched_at: Timestamp,
    /// Expiry after [`effective_expiry`]: never past, never beyond 12 hours.
    pub expires_at: Timestamp,
    /// True when the reported expiry was implausible and replaced.
    pub expiry_adjusted: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenDecodeError {
    #[error("authorization token is not valid base64")]
    Base64,
    #[error("authorization token is not of the form user:password")]
    Shape,
}

/// Splits base64(`user:password`) into its parts. The error never contains the token.
pub fn decode_authorization_token(token: &str) -> Result<(String, Password), TokenDecodeError> {
    let raw = STANDARD
        .decode(token.trim())
        .map_err(|_| TokenDecodeError::Base64)?;
    let text = String::from_utf8(raw).map_err(|_| TokenDecodeError::Shape)?;
    let (user, password) = text.split_once(':').ok_or(TokenDecodeError::Shape)?;
    if user.is_empty() || password.is_empty() {
        return Err(TokenDecodeError::Shape);
    }
    Ok((user.to_string(), Password::new(password)))
}

/// An expiry that is already past or more than 12 hours away (clock skew, emulators)
/// is taken as 12 hours after the fetch. Returns the expiry and whether it was adjusted.
pub fn effective_expiry(reported: Option<Timestamp>, fetched_at: Timestamp) -> (Timestamp, bool) {
    let latest = fetched_at + TOKEN_LIFETIME;
    match reported {
        Some(t) if t > fetched_at && t <= latest => (t, false),
        _ => (latest, true),
    }
}

/// When to refresh: `refresh_before` ahead of expiry, but when the token's whole
/// lifetime is shorter than that, at half its lifetime, and never sooner than
/// [`MIN_REFRESH_INTERVAL`] after the fetch, so a short-lived token cannot cause a
/// tight loop.
pub fn refresh_at(
    fetched_at: Timestamp,
    expires_at: Timestamp,
    refresh_before: SignedDuration,
) -> Timestamp {
    let lifetime = expires_at.duration_since(fetched_at);
    let at = if refresh_before < lifetime {
        expires_at - refresh_before
    } else {
        fetched_at + lifetime / 2
    };
    at.max(fetched_at + MIN_REFRESH_INTERVAL)
}

/// The `refreshBefore` duration of the spec ("6h", "1h30m", "90s").
pub fn parse_refresh_before(s: &str) -> Result<SignedDuration, String> {
    let d: SignedDuration = s.parse().map_err(|_| {
        format!("spec.refreshBefore: {s:?} is not a duration like 6h, 90m or 1h30m")
    })?;
    if d < SignedDuration::from_secs(10) || d > SignedDuration::from_hours(11) {
        return Err(format!("spec.refreshBefore: {s} is outside 10s..11h"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn decodes_user_and_password_and_hides_the_password() {
        let token = STANDARD.encode("AWS:secret-pass:with-colon");
        let (user, pw) = decode_authorization_token(&token).unwrap();
        assert_eq!(user, "AWS");
        assert_eq!(pw.expose(), "secret-pass:with-colon");
        assert!(!format!("{pw:?}").contains("secret"));
    }

    #[test]
    fn rejects_malformed_tokens_without_echoing_them() {
        let err = decode_authorization_token("not base64 !!").unwrap_err();
        assert_eq!(err, TokenDecodeError::Base64);
        let err = decode_authorization_token(&STANDARD.encode("nocolon")).unwrap_err();
        assert!(!err.to_string().contains("nocolon"));
    }

    #[test]
    fn implausible_expiry_becomes_twelve_hours() {
        let now = ts("2026-01-01T00:00:00Z");
        // moto reports 2015: in the past.
        assert_eq!(
            effective_expiry(Some(ts("2015-01-01T00:00:00Z")), now),
            (ts("2026-01-01T12:00:00Z"), true)
        );
        assert_eq!(
            effective_expiry(Some(ts("2027-01-01T00:00:00Z")), now),
            (ts("2026-01-01T12:00:00Z"), true)
        );
        assert!(effective_expiry(None, now).1);
        assert_eq!(
            effective_expiry(Some(ts("2026-01-01T11:00:00Z")), now),
            (ts("2026-01-01T11:00:00Z"), false)
        );
    }

    #[test]
    fn refresh_is_before_expiry_and_never_a_tight_loop() {
        let now = ts("2026-01-01T00:00:00Z");
        let six = SignedDuration::from_hours(6);
        assert_eq!(
            refresh_at(now, now + TOKEN_LIFETIME, six),
            ts("2026-01-01T06:00:00Z")
        );
        // A 60 s token with refreshBefore 6h refreshes at half-life, not at once.
        assert_eq!(
            refresh_at(now, now + SignedDuration::from_secs(60), six),
            now + SignedDuration::from_secs(30)
        );
        // A 2 s token: floor of 5 s.
        assert_eq!(
            refresh_at(now, now + SignedDuration::from_secs(2), six),
            now + MIN_REFRESH_INTERVAL
        );
    }

    #[test]
    fn refresh_before_parses_go_style_durations() {
        assert_eq!(
            parse_refresh_before("6h").unwrap(),
            SignedDuration::from_hours(6)
        );
        assert_eq!(
            parse_refresh_before("1h30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert!(
            parse_refresh_before("5s")
                .unwrap_err()
                .contains("refreshBefore")
        );
        assert!(parse_refresh_before("soon").is_err());
    }
}
