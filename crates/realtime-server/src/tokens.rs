//! Client tokens: HS256 JWTs with the algorithm pinned, `exp` checked without leeway,
//! and an audience that keeps other HS256 tokens signed with the same key out.

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use realtime_types::Capability;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The audience of gateway tokens.
const AUDIENCE: &str = "realtime-gateway";

/// What a gateway token carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The client id.
    pub sub: String,
    /// The user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The account.
    pub acc: String,
    /// The token id.
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The channels allowed; `None` means every channel of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chs: Option<Vec<String>>,
    /// The capabilities granted.
    pub caps: Vec<Capability>,
    /// Always [`AUDIENCE`].
    pub aud: String,
}

impl Claims {
    /// Claims for a new token.
    pub fn new(
        account_id: &str,
        client_id: String,
        user_id: Option<String>,
        channels: Option<Vec<String>>,
        capabilities: Vec<Capability>,
        issued_at: DateTime<Utc>,
        ttl_seconds: u32,
    ) -> Self {
        Claims {
            sub: client_id,
            uid: user_id,
            acc: account_id.to_owned(),
            jti: ulid::Ulid::generate().to_string(),
            iat: issued_at.timestamp(),
            exp: issued_at.timestamp() + i64::from(ttl_seconds),
            chs: channels,
            caps: capabilities,
            aud: AUDIENCE.to_owned(),
        }
    }

    /// When the token expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0).single().unwrap_or_default()
    }

    /// Whether the token allows `channel`.
    pub fn allows_channel(&self, channel: &str) -> bool {
        self.chs.as_ref().is_none_or(|channels| channels.iter().any(|c| c == channel))
    }

    /// Whether the token grants `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.caps.contains(&capability)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// It expired.
    #[error("the token expired")]
    Expired,
    /// It is malformed, badly signed, of another algorithm or audience.
    #[error("the token is not valid")]
    Invalid,
}

/// Signs and verifies gateway tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

impl TokenKeys {
    /// Keys from the signing secret.
    pub fn new(secret: &Secret) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
        }
    }

    /// The signed token.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.decode(token, true)
    }

    /// The claims of a well-signed token, expired or not (for revocation by token).
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<Claims, TokenError> {
        self.decode(token, false)
    }

    fn decode(&self, token: &str, check_expiry: bool) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = check_expiry;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation) {
            Ok(data) => Ok(data.claims),
            Err(error) if *error.kind() == ErrorKind::ExpiredSignature => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new("test-secret"))
    }

    fn claims(ttl: u32) -> Claims {
        Claims::new("acct", "c1".into(), None, None, vec![Capability::Subscribe], Utc::now(), ttl)
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let token = keys().sign(&claims(60));
        assert_eq!(keys().verify(&token).map(|c| c.sub), Ok("c1".into()));
        let other = TokenKeys::new(&Secret::new("other-secret"));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn an_expired_token_is_refused_but_can_still_be_identified() {
        let mut expired = claims(60);
        expired.exp = Utc::now().timestamp() - 1;
        let token = keys().sign(&expired);
        assert_eq!(keys().verify(&token), Err(TokenError::Expired));
        assert_eq!(keys().verify_ignoring_expiry(&token).map(|c| c.jti), Ok(expired.jti));
    }

    #[test]
    fn tokens_of_another_algorithm_are_refused() {
        let header = Header::new(Algorithm::HS384);
        let key = EncodingKey::from_secret(b"test-secret");
        let token = jsonwebtoken::encode(&header, &claims(60), &key).unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Invalid));
    }
}
