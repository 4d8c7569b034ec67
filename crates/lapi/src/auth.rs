//! Credentials: machine passwords (bcrypt, CrowdSec's cost), JWTs (HS256, 1 h), bouncer API keys
//! (random, stored as SHA-512 hex) and a login rate limiter.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

/// Go's `bcrypt.DefaultCost`, so hashes written by either side verify on the other.
pub const BCRYPT_COST: u32 = 10;

/// How long a token lives.
pub const TOKEN_TTL_SECS: i64 = 3600;

/// JWT claims, as CrowdSec's LAPI writes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Machine id.
    pub id: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// First issue time of this login (Unix seconds).
    pub orig_iat: i64,
}

/// Signing keys.
pub struct Jwt {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jwt(..)")
    }
}

impl Jwt {
    /// Keys from a shared secret (replicas must share it) or, when `None`, a random one per
    /// process (agents just log in again after a restart).
    pub fn new(secret: Option<&[u8]>) -> Self {
        let random: [u8; 64] = rand::random();
        let secret = secret.unwrap_or(&random);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `machine_id`, and its expiry (Unix seconds).
    pub fn issue(
        &self,
        machine_id: &str,
        orig_iat: Option<i64>,
    ) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + TOKEN_TTL_SECS;
        let claims = Claims {
            id: machine_id.to_owned(),
            exp,
            orig_iat: orig_iat.unwrap_or(now),
        };
        Ok((
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)?,
            exp,
        ))
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)?.claims)
    }
}

/// A new bouncer API key: 32 random bytes, base64 without padding (43 characters), as cscli makes.
pub fn new_api_key() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// How an API key is stored and looked up.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha512::digest(key.as_bytes()))
}

/// A machine password hash (slow on purpose: run it off the async threads).
pub fn hash_password(password: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, BCRYPT_COST)
}

/// Checks a password against its bcrypt hash; a malformed hash is a mismatch.
pub fn verify_password(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// Failed logins per client IP: after `max` failures within `window`, further attempts are
/// refused until the window passes (guessing passwords at bcrypt speed still costs CPU).
#[derive(Debug)]
pub struct LoginLimiter {
    max: u32,
    window: Duration,
    failures: std::sync::Mutex<hashbrown::HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// A limiter.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            failures: std::sync::Mutex::new(hashbrown::HashMap::new()),
        }
    }

    /// Whether `ip` may try now.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let Ok(mut m) = self.failures.lock() else {
            return true;
        };
        match m.get(&ip) {
            Some((n, since)) if since.elapsed() < self.window => *n < self.max,
            Some(_) => {
                m.remove(&ip);
                true
            }
            None => true,
        }
    }

    /// Records a failure.
    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut m) = self.failures.lock() else {
            return;
        };
        if m.len() > 100_000 {
            // Bounded memory under a distributed guessing attack: forget the stale ones.
            let window = self.window;
            m.retain(|_, (_, since)| since.elapsed() < window);
        }
        let e = m.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    /// Forgets an IP after a success.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(&ip);
        }
    }
}

/// Constant-time string equality (tokens).
pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let a = Jwt::new(Some(
            b"0123456789012345678901234567890123456789012345678901234567890123",
        ));
        let b = Jwt::new(None);
        let (t, exp) = a.issue("m1", None).unwrap_or_default();
        let c = a.verify(&t).map(|c| (c.id, c.exp)).unwrap_or_default();
        assert_eq!(c, ("m1".to_owned(), exp));
        assert!(b.verify(&t).is_err());
        assert!(a.verify("garbage").is_err());
    }

    #[test]
    fn api_keys_hash_like_crowdsec() {
        let k = new_api_key();
        assert_eq!(k.len(), 43);
        assert_eq!(hash_api_key("abc").len(), 128);
        assert_ne!(hash_api_key(&k), hash_api_key(&new_api_key()));
    }

    #[test]
    fn limiter_blocks_after_max_failures() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert!(l.allowed(ip));
        l.failed(ip);
        l.failed(ip);
        assert!(!l.allowed(ip));
        l.succeeded(ip);
        assert!(l.allowed(ip));
    }
}
