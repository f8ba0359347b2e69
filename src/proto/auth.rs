//! Who may open a signaling session: JSON Web Tokens (RFC 7519, compact JWS of RFC 7515)
//! signed with HS256 or EdDSA/Ed25519 (RFC 8037), plus an `Origin` allow-list, checked on
//! the WebSocket upgrade.
//!
//! Driving it:
//!
//! 1. At start-up, build one [`Authenticator`] from the [`AuthConfig`]; keys are parsed and
//!    checked there, so a bad key stops the server instead of failing every client.
//! 2. On each upgrade request, call [`Authenticator::check`] with the request's query
//!    string, `Authorization` header, `Origin` header and the current time in Unix seconds.
//! 3. On `Err(e)`, answer `e.status()` (401 or 403) with `e.to_string()` as the body.
//!    On `Ok(Some(claims))`, keep the claims with the session (`claims.sub` becomes
//!    `meta.sub`); `Ok(None)` means no token was given and none is required.
//! 4. On each `join`, ask [`Claims::may_join`]; refuse with [`AuthError::RoomNotAllowed`].
//!
//! What is checked, in order: the origin; that exactly one token was sent (`?token=` in the
//! query, percent-decoded, or `Authorization: Bearer`); its size and shape; its `alg`
//! against the configured key kinds (`none` and every other algorithm are refused, and a
//! key is only ever used with the algorithm of its kind, so an HS256 token "signed" with an
//! Ed25519 public key cannot verify); no `crit` header; the signature, against the keys
//! whose `kid` matches the token's (all keys of the kind when the token has no `kid`);
//! and only then the claims: `exp` (required), `nbf`, `aud`, `iss`, all with the configured
//! leeway. Keys or certificates named inside the token (`jwk`, `jku`, `x5u`, ...) are
//! ignored: trust comes from the configuration only.
//!
//! Nothing here reads a clock: the time is an argument.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use thiserror::Error;

/// Longest token accepted, in bytes after percent-decoding.
pub const TOKEN_BYTES_MAX: usize = 4096;
/// Most keys (HS256 and Ed25519 together) a configuration may hold.
pub const KEYS_MAX: usize = 16;
/// Most entries in the origin allow-list.
pub const ORIGINS_MAX: usize = 64;
/// Most entries in a token's `rooms` claim.
pub const ROOMS_MAX: usize = 256;
/// Shortest HS256 secret: RFC 7518 §3.2 requires a key at least as long as the hash.
pub const HS256_SECRET_BYTES_MIN: usize = 32;
/// Default clock-skew allowance for `exp` and `nbf`.
pub const LEEWAY_S_DEFAULT: u64 = 60;

/// An HS256 shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Hs256Secret {
    /// Key id matched against the token's `kid` header, if the issuer sets one.
    pub kid: Option<String>,
    /// The secret bytes, at least [`HS256_SECRET_BYTES_MIN`] long.
    pub secret: Vec<u8>,
}

impl fmt::Debug for Hs256Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret itself (configs end up in logs).
        f.debug_struct("Hs256Secret")
            .field("kid", &self.kid)
            .field("secret_bytes", &self.secret.len())
            .finish()
    }
}

/// An Ed25519 public key for EdDSA tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ed25519PublicKey {
    /// Key id matched against the token's `kid` header, if the issuer sets one.
    pub kid: Option<String>,
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo), or the base64 (standard or URL-safe,
    /// padded or not) of either the raw 32-byte key or its SubjectPublicKeyInfo DER.
    pub public_key: String,
}

/// Token and origin settings; fixed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Refuse upgrades that carry no token. When false a token is optional, but one that
    /// is sent must still be valid.
    pub required: bool,
    /// HS256 secrets, several during a rotation.
    pub hs256_secrets: Vec<Hs256Secret>,
    /// Ed25519 public keys, several during a rotation.
    pub ed25519_public_keys: Vec<Ed25519PublicKey>,
    /// Required `aud` value: when set, tokens must carry it (as a string or in an array).
    /// When unset, a token that has an `aud` claim is refused, as RFC 7519 §4.1.3 demands
    /// of a recipient that cannot find itself in it.
    pub audience: Option<String>,
    /// Required `iss` value; unset accepts any issuer.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// Allowed `Origin` values: exact (`https://app.example.com`, `http://127.0.0.1:8080`)
    /// or one leading wildcard label (`https://*.example.com`, which matches any subdomain
    /// but not `https://example.com` itself). Empty allows any origin. A request without
    /// an `Origin` header passes: browsers always send one on WebSocket upgrades, and
    /// other clients could send any value they like, so the list only protects users'
    /// browsers from other sites.
    pub origins: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: false,
            hs256_secrets: Vec::new(),
            ed25519_public_keys: Vec::new(),
            audience: None,
            issuer: None,
            leeway_s: LEEWAY_S_DEFAULT,
            origins: Vec::new(),
        }
    }
}

/// A configuration the [`Authenticator`] cannot work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// `required` without any key.
    #[error(
        "auth.required is set but no key is configured; \
         hint: add auth.hs256_secrets or auth.ed25519_public_keys"
    )]
    NoKeys,
    /// More keys than [`KEYS_MAX`].
    #[error("more than {KEYS_MAX} auth keys configured; hint: remove retired keys")]
    TooManyKeys,
    /// An HS256 secret shorter than [`HS256_SECRET_BYTES_MIN`].
    #[error(
        "auth.hs256_secrets[{index}] is shorter than {HS256_SECRET_BYTES_MIN} bytes \
         (RFC 7518 section 3.2)"
    )]
    SecretTooShort {
        /// Position in the list.
        index: usize,
    },
    /// A public key that is neither PEM nor base64 of an Ed25519 key, or not a valid point.
    #[error(
        "auth.ed25519_public_keys[{index}] is not an Ed25519 public key; \
         hint: give the PEM 'PUBLIC KEY' block or the base64 of the 32 raw bytes"
    )]
    BadPublicKey {
        /// Position in the list.
        index: usize,
    },
    /// A public key of small order, which would accept forged signatures.
    #[error("auth.ed25519_public_keys[{index}] is a weak (small-order) key")]
    WeakPublicKey {
        /// Position in the list.
        index: usize,
    },
    /// More origins than [`ORIGINS_MAX`].
    #[error("more than {ORIGINS_MAX} entries in auth.origins")]
    TooManyOrigins,
    /// An origin that is not `scheme://host[:port]` or `scheme://*.host[:port]`.
    #[error(
        "auth.origins[{index}] is not an origin; hint: write 'https://app.example.com' \
         or 'https://*.example.com', without a path or trailing slash"
    )]
    BadOrigin {
        /// Position in the list.
        index: usize,
    },
}

/// Why an upgrade was refused; [`AuthError::status`] gives the HTTP status and `Display`
/// a short reason for the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token, and one is required.
    #[error("missing token: send ?token= or 'Authorization: Bearer'")]
    MissingToken,
    /// A token in both the query and the header, or two `token` parameters (RFC 6750 §2
    /// allows one method per request).
    #[error("token given more than once")]
    TokenGivenTwice,
    /// Longer than [`TOKEN_BYTES_MAX`].
    #[error("token too long")]
    TokenTooLong,
    /// Not a compact JWS; names the part that is wrong (`query`, `authorization`,
    /// `structure`, `header`, `signature`, `payload`).
    #[error("malformed token {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, unknown, or of a kind no key is configured for.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header has `crit` extensions, none of which this server understands.
    #[error("token has critical header extensions")]
    CriticalHeader,
    /// The token's `kid` names no configured key.
    #[error("token key id unknown")]
    UnknownKey,
    /// No candidate key verifies the signature.
    #[error("token signature invalid")]
    BadSignature,
    /// A claim is missing (`exp`) or has the wrong type; names the claim.
    #[error("token claim {0} missing or invalid")]
    InvalidClaim(&'static str),
    /// `exp` (plus leeway) has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus leeway) has not come yet.
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not name this server, or names something when no audience is set.
    #[error("token audience not accepted")]
    WrongAudience,
    /// `iss` is not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// The `Origin` header is not in the allow-list.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The token's `rooms` claim does not cover the room asked for.
    #[error("room not allowed by token")]
    RoomNotAllowed,
}

impl AuthError {
    /// The HTTP status answered: 403 for a refused origin or room, 401 otherwise.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            AuthError::OriginNotAllowed | AuthError::RoomNotAllowed => 403,
            _ => 401,
        }
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who the session is; becomes the session's `meta.sub`.
    pub sub: Option<String>,
    /// `rooms`: the rooms the session may join; `None` (claim absent) means any room. An
    /// entry ending in `*` allows every room starting with what comes before it.
    pub rooms: Option<Vec<String>>,
    /// `admin`: whether the session may use admin operations (false when absent). It does
    /// not widen `rooms`.
    pub admin: bool,
    /// `exp`: when the token expires, in Unix seconds.
    pub exp: u64,
}

impl Claims {
    /// Whether the token allows joining `room`.
    #[must_use]
    pub fn may_join(&self, room: &str) -> bool {
        let Some(rooms) = &self.rooms else {
            return true;
        };
        rooms.iter().any(|allowed| match allowed.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => allowed == room,
        })
    }
}

/// Checks upgrade requests against an [`AuthConfig`]; build once, share read-only.
#[derive(Clone)]
pub struct Authenticator {
    required: bool,
    hs256: Vec<(Option<String>, Hmac<Sha256>)>,
    ed25519: Vec<(Option<String>, VerifyingKey)>,
    audience: Option<String>,
    issuer: Option<String>,
    leeway_s: u64,
    origins: Vec<OriginRule>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("required", &self.required)
            .field("hs256_keys", &self.hs256.len())
            .field("ed25519_keys", &self.ed25519.len())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway_s", &self.leeway_s)
            .field("origins", &self.origins)
            .finish()
    }
}

/// The key kind an `alg` value selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Hs256,
    EdDsa,
}

/// The JOSE header fields looked at; everything else is ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The registered and private claims looked at, each kept as raw JSON so a wrong type can
/// be reported by name. Serde refuses duplicate members of these names.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
    #[serde(default)]
    nbf: Option<Value>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    iss: Option<Value>,
    #[serde(default)]
    rooms: Option<Value>,
    #[serde(default)]
    admin: Option<Value>,
}

/// Compact-JWS base64url: no padding, and trailing bits must be zero, so each signature
/// has exactly one encoding.
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Authenticator {
    /// Parses and checks the keys and origins of `config`.
    ///
    /// # Errors
    /// The first problem found, naming the setting (see [`AuthConfigError`]).
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let keys = config.hs256_secrets.len() + config.ed25519_public_keys.len();
        if keys > KEYS_MAX {
            return Err(AuthConfigError::TooManyKeys);
        }
        if config.required && keys == 0 {
            return Err(AuthConfigError::NoKeys);
        }
        let mut hs256 = Vec::with_capacity(config.hs256_secrets.len());
        for (index, s) in config.hs256_secrets.iter().enumerate() {
            if s.secret.len() < HS256_SECRET_BYTES_MIN {
                return Err(AuthConfigError::SecretTooShort { index });
            }
            let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&s.secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            hs256.push((s.kid.clone(), mac));
        }
        let mut ed25519 = Vec::with_capacity(config.ed25519_public_keys.len());
        for (index, k) in config.ed25519_public_keys.iter().enumerate() {
            let bytes = parse_ed25519_public_key(&k.public_key)
                .ok_or(AuthConfigError::BadPublicKey { index })?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| AuthConfigError::BadPublicKey { index })?;
            if key.is_weak() {
                return Err(AuthConfigError::WeakPublicKey { index });
            }
            ed25519.push((k.kid.clone(), key));
        }
        if config.origins.len() > ORIGINS_MAX {
            return Err(AuthConfigError::TooManyOrigins);
        }
        let origins = config
            .origins
            .iter()
            .enumerate()
            .map(|(index, o)| OriginRule::parse(o).ok_or(AuthConfigError::BadOrigin { index }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            required: config.required,
            hs256,
            ed25519,
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
            leeway_s: config.leeway_s,
            origins,
        })
    }

    /// Whether upgrades without a token are refused.
    #[must_use]
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Checks an upgrade request: `query` is the query string without `?`,
    /// `authorization` and `origin` the header values, `now_unix_s` the current time.
    ///
    /// Returns the token's claims, or `None` when no token was sent and none is required
    /// (or when no key is configured at all: tokens are then not looked at).
    ///
    /// # Errors
    /// Why the request is refused; see [`AuthError::status`].
    pub fn check(
        &self,
        query: Option<&str>,
        authorization: Option<&str>,
        origin: Option<&str>,
        now_unix_s: u64,
    ) -> Result<Option<Claims>, AuthError> {
        if let Some(origin) = origin {
            if !self.origin_allowed(origin) {
                return Err(AuthError::OriginNotAllowed);
            }
        }
        if self.hs256.is_empty() && self.ed25519.is_empty() {
            // `new` refuses `required` without keys, so this is "auth off".
            debug_assert!(!self.required);
            return Ok(None);
        }
        let mut buf = [0u8; TOKEN_BYTES_MAX];
        let from_query = match query {
            Some(q) => query_token(q, &mut buf)?,
            None => None,
        };
        let from_header = match authorization {
            Some(h) => bearer_token(h)?,
            None => None,
        };
        let token: &[u8] = match (from_query, from_header) {
            (Some(_), Some(_)) => return Err(AuthError::TokenGivenTwice),
            (Some(n), None) => &buf[..n],
            (None, Some(t)) => t.as_bytes(),
            (None, None) if self.required => return Err(AuthError::MissingToken),
            (None, None) => return Ok(None),
        };
        self.verify(token, now_unix_s).map(Some)
    }

    /// Whether `origin` passes the allow-list (an empty list allows all).
    #[must_use]
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.is_empty() || self.origins.iter().any(|r| r.matches(origin))
    }

    /// Verifies a compact-JWS token and returns its claims.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(&self, token: &[u8], now_unix_s: u64) -> Result<Claims, AuthError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::TokenTooLong);
        }
        // 1. Shape: exactly three base64url parts.
        let mut parts = token.split(|b| *b == b'.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("structure"));
        };
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];

        // 2. Header: algorithm, key id, no critical extensions.
        let mut buf = [0u8; TOKEN_BYTES_MAX];
        let n = B64URL
            .decode_slice(header_b64, &mut buf)
            .map_err(|_| AuthError::Malformed("header"))?;
        let header: Header =
            serde_json::from_slice(&buf[..n]).map_err(|_| AuthError::Malformed("header"))?;
        let alg = match header.alg.as_str() {
            "HS256" if !self.hs256.is_empty() => Alg::Hs256,
            // "Ed25519" is the fully specified name of RFC 9864 for the same signature.
            "EdDSA" | "Ed25519" if !self.ed25519.is_empty() => Alg::EdDsa,
            _ => return Err(AuthError::AlgorithmNotAllowed),
        };
        if header.crit.is_some() {
            return Err(AuthError::CriticalHeader);
        }

        // 3. Signature, before anything in the payload is believed.
        let n = B64URL
            .decode_slice(signature_b64, &mut buf)
            .map_err(|_| AuthError::Malformed("signature"))?;
        let signature = &buf[..n];
        let kid = header.kid.as_deref();
        let verified = match alg {
            Alg::Hs256 => {
                if signature.len() != 32 {
                    return Err(AuthError::Malformed("signature"));
                }
                let keys = select_keys(&self.hs256, kid)?;
                keys.into_iter().any(|mac| {
                    let mut mac = mac.clone();
                    mac.update(signing_input);
                    // Constant-time comparison.
                    mac.verify_slice(signature).is_ok()
                })
            }
            Alg::EdDsa => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                    return Err(AuthError::Malformed("signature"));
                };
                let signature = Signature::from_bytes(&bytes);
                let keys = select_keys(&self.ed25519, kid)?;
                keys.into_iter()
                    .any(|key| key.verify_strict(signing_input, &signature).is_ok())
            }
        };
        if !verified {
            return Err(AuthError::BadSignature);
        }

        // 4. Claims.
        let n = B64URL
            .decode_slice(payload_b64, &mut buf)
            .map_err(|_| AuthError::Malformed("payload"))?;
        let raw: RawClaims =
            serde_json::from_slice(&buf[..n]).map_err(|_| AuthError::Malformed("payload"))?;
        self.claims(raw, now_unix_s)
    }

    /// Checks the time, audience and issuer claims and converts the rest.
    fn claims(&self, raw: RawClaims, now_unix_s: u64) -> Result<Claims, AuthError> {
        let exp = match &raw.exp {
            Some(v) => numeric_date(v).ok_or(AuthError::InvalidClaim("exp"))?,
            None => return Err(AuthError::InvalidClaim("exp")),
        };
        // RFC 7519 §4.1.4: the current time must be before `exp`.
        if now_unix_s >= exp.saturating_add(self.leeway_s) {
            return Err(AuthError::Expired);
        }
        if let Some(v) = &raw.nbf {
            let nbf = numeric_date(v).ok_or(AuthError::InvalidClaim("nbf"))?;
            if nbf > now_unix_s.saturating_add(self.leeway_s) {
                return Err(AuthError::NotYetValid);
            }
        }
        match (&raw.aud, &self.audience) {
            (None, None) => {}
            // A configured audience is required: a token minted for no audience in
            // particular is not one minted for us.
            (None, Some(_)) | (Some(_), None) => return Err(AuthError::WrongAudience),
            (Some(Value::String(a)), Some(want)) if a == want => {}
            (Some(Value::Array(list)), Some(want)) => {
                if !list.iter().all(Value::is_string) {
                    return Err(AuthError::InvalidClaim("aud"));
                }
                if !list.iter().any(|a| a.as_str() == Some(want)) {
                    return Err(AuthError::WrongAudience);
                }
            }
            (Some(Value::String(_)), Some(_)) => return Err(AuthError::WrongAudience),
            (Some(_), Some(_)) => return Err(AuthError::InvalidClaim("aud")),
        }
        if let Some(want) = &self.issuer {
            match &raw.iss {
                Some(Value::String(iss)) if iss == want => {}
                Some(Value::String(_)) | None => return Err(AuthError::WrongIssuer),
                Some(_) => return Err(AuthError::InvalidClaim("iss")),
            }
        }
        let sub = match raw.sub {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(AuthError::InvalidClaim("sub")),
        };
        let rooms = match raw.rooms {
            None => None,
            Some(Value::Array(list)) if list.len() <= ROOMS_MAX => Some(
                list.into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(AuthError::InvalidClaim("rooms")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(AuthError::InvalidClaim("rooms")),
        };
        let admin = match raw.admin {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(AuthError::InvalidClaim("admin")),
        };
        Ok(Claims {
            sub,
            rooms,
            admin,
            exp,
        })
    }
}

/// The keys to try for a token's `kid`: those with that id; if none has it, those
/// configured without an id; with no `kid` in the token, all of them.
fn select_keys<'k, K>(
    keys: &'k [(Option<String>, K)],
    kid: Option<&str>,
) -> Result<Vec<&'k K>, AuthError> {
    let chosen: Vec<&K> = match kid {
        None => keys.iter().map(|(_, k)| k).collect(),
        Some(kid) => {
            let named: Vec<&K> = keys
                .iter()
                .filter(|(id, _)| id.as_deref() == Some(kid))
                .map(|(_, k)| k)
                .collect();
            if named.is_empty() {
                keys.iter()
                    .filter(|(id, _)| id.is_none())
                    .map(|(_, k)| k)
                    .collect()
            } else {
                named
            }
        }
    };
    if chosen.is_empty() {
        return Err(AuthError::UnknownKey);
    }
    Ok(chosen)
}

/// A JWT NumericDate (RFC 7519 §2): non-negative seconds, fractions truncated.
fn numeric_date(v: &Value) -> Option<u64> {
    let Value::Number(n) = v else { return None };
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    // 2^63 as f64; every non-negative value below it (so not NaN or infinite) truncates
    // into a u64.
    if (0.0..9_223_372_036_854_775_808.0).contains(&f) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Some(f as u64);
    }
    None
}

/// Finds the single `token` parameter of a query string and percent-decodes it into
/// `buf`; returns its length.
fn query_token(query: &str, buf: &mut [u8; TOKEN_BYTES_MAX]) -> Result<Option<usize>, AuthError> {
    let mut found: Option<&str> = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "token" {
            if found.is_some() {
                return Err(AuthError::TokenGivenTwice);
            }
            found = Some(value);
        }
    }
    let Some(raw) = found else { return Ok(None) };
    let raw = raw.as_bytes();
    let mut len = 0usize;
    let mut i = 0usize;
    while i < raw.len() {
        let byte = if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_value);
            let lo = raw.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(AuthError::Malformed("query"));
            };
            i += 3;
            (hi << 4) | lo
        } else {
            i += 1;
            raw[i - 1]
        };
        let Some(slot) = buf.get_mut(len) else {
            return Err(AuthError::TokenTooLong);
        };
        *slot = byte;
        len += 1;
    }
    if len == 0 {
        return Err(AuthError::Malformed("query"));
    }
    Ok(Some(len))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme is
/// case-insensitive). Other schemes carry no token for us and are ignored.
fn bearer_token(header: &str) -> Result<Option<&str>, AuthError> {
    let header = header.trim_matches(|c| c == ' ' || c == '\t');
    let Some(scheme) = header.get(..6) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let rest = &header[6..];
    let token = rest.trim_start_matches(' ');
    if token.len() == rest.len() {
        // "Bearerx..." is another scheme; "Bearer" alone has no token.
        return if rest.is_empty() {
            Err(AuthError::Malformed("authorization"))
        } else {
            Ok(None)
        };
    }
    if token.is_empty() {
        return Err(AuthError::Malformed("authorization"));
    }
    Ok(Some(token))
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The 32 key bytes from a PEM `PUBLIC KEY` block or the base64 of the raw key or of its
/// SubjectPublicKeyInfo.
fn parse_ed25519_public_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let body: String = if let Some(rest) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        let end = rest.find("-----END PUBLIC KEY-----")?;
        if !rest[end + "-----END PUBLIC KEY-----".len()..]
            .trim()
            .is_empty()
        {
            return None;
        }
        rest[..end].split_ascii_whitespace().collect()
    } else {
        text.to_owned()
    };
    let mut buf = [0u8; 64];
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let n = engines
        .iter()
        .find_map(|e| e.decode_slice(body.as_bytes(), &mut buf).ok())?;
    match n {
        32 => buf[..32].try_into().ok(),
        44 if buf[..12] == ED25519_SPKI_PREFIX => buf[12..44].try_into().ok(),
        _ => None,
    }
}

/// One entry of the origin allow-list, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    /// The whole origin, e.g. `https://app.example.com:8443` or `null`.
    Exact(String),
    /// `scheme://` and `.rest` of `scheme://*.rest`.
    Wildcard { scheme: String, suffix: String },
}

impl OriginRule {
    fn parse(pattern: &str) -> Option<Self> {
        let p = pattern.trim().to_ascii_lowercase();
        if p == "null" {
            return Some(OriginRule::Exact(p));
        }
        let (scheme, authority) = p.split_once("://")?;
        let scheme_ok = !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
        let (host, wild) = match authority.strip_prefix("*.") {
            Some(h) => (h, true),
            None => (authority, false),
        };
        let host_ok = !host.is_empty()
            && !host.starts_with('.')
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
            });
        if !scheme_ok || !host_ok {
            return None;
        }
        Some(if wild {
            OriginRule::Wildcard {
                scheme: format!("{scheme}://"),
                suffix: format!(".{host}"),
            }
        } else {
            OriginRule::Exact(p)
        })
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginRule::Exact(o) => origin.eq_ignore_ascii_case(o),
            OriginRule::Wildcard { scheme, suffix } => {
                let o = origin.as_bytes();
                let (s, x) = (scheme.as_bytes(), suffix.as_bytes());
                if o.len() <= s.len() + x.len()
                    || !o[..s.len()].eq_ignore_ascii_case(s)
                    || !o[o.len() - x.len()..].eq_ignore_ascii_case(x)
                {
                    return false;
                }
                // The subdomain labels: letters, digits, hyphens, single dots between.
                let labels = &o[s.len()..o.len() - x.len()];
                labels.split(|b| *b == b'.').all(|l| {
                    !l.is_empty() && l.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const NOW: u64 = 1_800_000_000;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256";
    const SEED: [u8; 32] = [7u8; 32];

    fn b64(data: &[u8]) -> String {
        B64URL.encode(data)
    }

    fn hs256_token(secret: &[u8], header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn eddsa_token(seed: &[u8; 32], header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = SigningKey::from_bytes(seed).sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    fn public_key_raw(seed: &[u8; 32]) -> [u8; 32] {
        SigningKey::from_bytes(seed).verifying_key().to_bytes()
    }

    fn public_key_pem(seed: &[u8; 32]) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&public_key_raw(seed));
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }

    fn config() -> AuthConfig {
        AuthConfig {
            required: true,
            hs256_secrets: vec![Hs256Secret {
                kid: None,
                secret: SECRET.to_vec(),
            }],
            ed25519_public_keys: vec![Ed25519PublicKey {
                kid: None,
                public_key: public_key_pem(&SEED),
            }],
            ..AuthConfig::default()
        }
    }

    fn auth(cfg: &AuthConfig) -> Authenticator {
        Authenticator::new(cfg).unwrap()
    }

    fn payload(exp: u64) -> String {
        format!(r#"{{"sub":"alice","exp":{exp},"rooms":["lobby","team-*"],"admin":true}}"#)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn valid_hs256_from_header_and_query() {
        let a = auth(&config());
        let t = hs256_token(
            SECRET,
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &payload(NOW + 600),
        );
        let want = Claims {
            sub: Some("alice".into()),
            rooms: Some(vec!["lobby".into(), "team-*".into()]),
            admin: true,
            exp: NOW + 600,
        };
        assert_eq!(
            a.check(None, Some(&bearer(&t)), None, NOW),
            Ok(Some(want.clone()))
        );
        let q = format!("room=x&token={t}&v=1");
        assert_eq!(a.check(Some(&q), None, None, NOW), Ok(Some(want.clone())));
        // Percent-encoded (every dot escaped) decodes to the same token.
        let q = format!("token={}", t.replace('.', "%2E"));
        assert_eq!(a.check(Some(&q), None, None, NOW), Ok(Some(want)));
    }

    #[test]
    fn valid_eddsa_with_pem_and_raw_keys() {
        let t = eddsa_token(&SEED, r#"{"alg":"EdDSA"}"#, &payload(NOW + 600));
        let a = auth(&config());
        let claims = a
            .check(None, Some(&bearer(&t)), None, NOW)
            .unwrap()
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        for text in [
            base64::engine::general_purpose::STANDARD.encode(public_key_raw(&SEED)),
            B64URL.encode(public_key_raw(&SEED)),
        ] {
            let cfg = AuthConfig {
                hs256_secrets: vec![],
                ed25519_public_keys: vec![Ed25519PublicKey {
                    kid: None,
                    public_key: text,
                }],
                ..config()
            };
            assert!(auth(&cfg).check(None, Some(&bearer(&t)), None, NOW).is_ok());
        }
        // The fully specified algorithm name of RFC 9864 is the same signature.
        let t = eddsa_token(&SEED, r#"{"alg":"Ed25519"}"#, &payload(NOW + 600));
        assert!(a.check(None, Some(&bearer(&t)), None, NOW).is_ok());
    }

    /// A token and PEM key made with Python's `cryptography` package
    /// (`Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))`): an independent
    /// implementation of the signing side and of the SubjectPublicKeyInfo encoding.
    #[test]
    fn eddsa_token_from_python_cryptography() {
        const PY_TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9\
            .eyJzdWIiOiJweSIsImV4cCI6MTgwMDAwMDYwMCwicm9vbXMiOlsicHktKiJdfQ\
            .CPFm76VY_s_bNO7FeDPTI8NpgxflmtkM6YtEoZEZOoFh80UoVHxR6gL_gfIZCcI262fxMi6Z\
            QNoTO5vUlzYQBQ";
        const PY_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n\
            -----END PUBLIC KEY-----\n";
        assert_eq!(public_key_pem(&SEED), PY_PEM);
        let cfg = AuthConfig {
            hs256_secrets: vec![],
            ed25519_public_keys: vec![Ed25519PublicKey {
                kid: None,
                public_key: PY_PEM.into(),
            }],
            ..config()
        };
        let claims = auth(&cfg)
            .check(None, Some(&bearer(PY_TOKEN)), None, NOW)
            .unwrap()
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("py"));
        assert!(claims.may_join("py-1") && !claims.may_join("other"));
        // Our own signer produces the same bytes (Ed25519 is deterministic).
        let ours = eddsa_token(
            &SEED,
            r#"{"alg":"EdDSA","typ":"JWT"}"#,
            r#"{"sub":"py","exp":1800000600,"rooms":["py-*"]}"#,
        );
        assert_eq!(ours, PY_TOKEN);
    }

    /// RFC 7515 appendix A.1: the HS256 example (its `exp` is in 2011).
    #[test]
    fn rfc7515_a1_hs256_example() {
        let key = B64URL
            .decode(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4h\
                 cgUuTwjAzZr1Z9CAow",
            )
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
            .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv\
            bS9pc19yb290Ijp0cnVlfQ\
            .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let cfg = AuthConfig {
            hs256_secrets: vec![Hs256Secret {
                kid: None,
                secret: key,
            }],
            issuer: Some("joe".into()),
            leeway_s: 0,
            ..AuthConfig::default()
        };
        let a = auth(&cfg);
        let claims = a.verify(token.as_bytes(), 1_300_819_379).unwrap();
        assert_eq!(claims.exp, 1_300_819_380);
        assert_eq!(claims.sub, None);
        assert_eq!(
            a.verify(token.as_bytes(), 1_300_819_380),
            Err(AuthError::Expired)
        );
    }

    /// RFC 8037 appendix A.4: the Ed25519 example verifies; its payload is not a claims
    /// object, so the token is refused after the signature, as malformed payload.
    #[test]
    fn rfc8037_a4_ed25519_example() {
        let cfg = AuthConfig {
            ed25519_public_keys: vec![Ed25519PublicKey {
                kid: None,
                public_key: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
            }],
            ..AuthConfig::default()
        };
        let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc\
            .hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7\
            sVvpAr_MuM0KAg";
        let a = auth(&cfg);
        assert_eq!(
            a.verify(token.as_bytes(), NOW),
            Err(AuthError::Malformed("payload"))
        );
        let mut bad = token.as_bytes().to_vec();
        let last = bad.len() - 5;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.verify(&bad, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn expiry_and_not_before_with_leeway() {
        let a = auth(&config());
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW));
        // Expired at NOW, but within the 60 s leeway.
        assert!(a.verify(t.as_bytes(), NOW + 59).is_ok());
        assert_eq!(a.verify(t.as_bytes(), NOW + 60), Err(AuthError::Expired));
        assert_eq!(
            a.check(None, Some(&bearer(&t)), None, NOW + 3600)
                .unwrap_err()
                .status(),
            401
        );
        let nbf = format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 1000, NOW + 100);
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &nbf);
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::NotYetValid));
        assert!(a.verify(t.as_bytes(), NOW + 40).is_ok(), "within leeway");
        // Fractional dates are allowed by RFC 7519.
        let frac = format!(r#"{{"exp":{}.75}}"#, NOW + 10);
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &frac);
        assert_eq!(a.verify(t.as_bytes(), NOW).unwrap().exp, NOW + 10);
    }

    #[test]
    fn missing_or_bad_exp() {
        let a = auth(&config());
        for p in [r#"{"sub":"x"}"#, r#"{"exp":"soon"}"#, r#"{"exp":-5}"#] {
            let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, p);
            assert_eq!(
                a.verify(t.as_bytes(), NOW),
                Err(AuthError::InvalidClaim("exp")),
                "{p}"
            );
        }
        // A duplicated member is refused, not resolved to one of its values.
        let p = format!(r#"{{"exp":{},"exp":{}}}"#, NOW - 10, NOW + 10);
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &p);
        assert_eq!(
            a.verify(t.as_bytes(), NOW),
            Err(AuthError::Malformed("payload"))
        );
    }

    #[test]
    fn wrong_signature() {
        let a = auth(&config());
        let t = hs256_token(
            b"another-secret-another-secret-another",
            r#"{"alg":"HS256"}"#,
            &payload(NOW + 60),
        );
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::BadSignature));
        let t = eddsa_token(&[9u8; 32], r#"{"alg":"EdDSA"}"#, &payload(NOW + 60));
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::BadSignature));
        // A valid signature over another payload.
        let good = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW + 60));
        let other = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW + 61));
        let (head, _) = other.rsplit_once('.').unwrap();
        let (_, sig) = good.rsplit_once('.').unwrap();
        let spliced = format!("{head}.{sig}");
        assert_eq!(
            a.verify(spliced.as_bytes(), NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn alg_none_and_unknown_algorithms_refused() {
        let a = auth(&config());
        let p = b64(payload(NOW + 60).as_bytes());
        for h in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let t = format!("{}.{p}.", b64(h.as_bytes()));
            let got = a.verify(t.as_bytes(), NOW);
            let want = if h.contains("alg") {
                AuthError::AlgorithmNotAllowed
            } else {
                AuthError::Malformed("header")
            };
            assert_eq!(got, Err(want), "{h}");
            assert_eq!(
                a.check(None, Some(&bearer(&t)), None, NOW)
                    .unwrap_err()
                    .status(),
                401
            );
        }
        // A kind with no key configured is refused as an algorithm.
        let only_ed = AuthConfig {
            hs256_secrets: vec![],
            ..config()
        };
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW + 60));
        assert_eq!(
            auth(&only_ed).verify(t.as_bytes(), NOW),
            Err(AuthError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn alg_confusion_hs256_with_public_key_bytes_fails() {
        // An attacker who knows the public key "signs" HS256 with it, hoping the verifier
        // uses the configured EdDSA key as an HMAC secret.
        let pem = public_key_pem(&SEED);
        let raw = public_key_raw(&SEED);
        let b64_raw = base64::engine::general_purpose::STANDARD.encode(raw);
        let only_ed = AuthConfig {
            hs256_secrets: vec![],
            ..config()
        };
        for secret in [pem.as_bytes(), &raw[..], b64_raw.as_bytes()] {
            let t = hs256_token(secret, r#"{"alg":"HS256"}"#, &payload(NOW + 60));
            assert_eq!(
                auth(&only_ed).verify(t.as_bytes(), NOW),
                Err(AuthError::AlgorithmNotAllowed)
            );
            // With HS256 also configured, its own secret is the only HMAC key.
            assert_eq!(
                auth(&config()).verify(t.as_bytes(), NOW),
                Err(AuthError::BadSignature)
            );
        }
    }

    #[test]
    fn missing_token_when_required_and_optional() {
        let a = auth(&config());
        let e = a.check(Some("room=x"), None, None, NOW).unwrap_err();
        assert_eq!(e, AuthError::MissingToken);
        assert_eq!(e.status(), 401);
        assert_eq!(
            a.check(None, Some("Basic dXNlcjpwYXNz"), None, NOW),
            Err(AuthError::MissingToken)
        );
        let optional = auth(&AuthConfig {
            required: false,
            ..config()
        });
        assert_eq!(optional.check(None, None, None, NOW), Ok(None));
        // Optional does not mean "bad tokens pass".
        assert_eq!(
            optional.check(Some("token=abc.def.ghi"), None, None, NOW),
            Err(AuthError::Malformed("header"))
        );
        // No keys at all: auth is off, tokens are not looked at.
        let off = auth(&AuthConfig::default());
        assert_eq!(off.check(Some("token=garbage"), None, None, NOW), Ok(None));
    }

    #[test]
    fn token_sources() {
        let a = auth(&config());
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW + 60));
        let q = format!("token={t}");
        assert_eq!(
            a.check(Some(&q), Some(&bearer(&t)), None, NOW),
            Err(AuthError::TokenGivenTwice)
        );
        let q2 = format!("token={t}&token={t}");
        assert_eq!(
            a.check(Some(&q2), None, None, NOW),
            Err(AuthError::TokenGivenTwice)
        );
        assert!(a
            .check(None, Some(&format!("bearer   {t}")), None, NOW)
            .is_ok());
        assert_eq!(
            a.check(None, Some("Bearer"), None, NOW),
            Err(AuthError::Malformed("authorization"))
        );
        assert_eq!(
            a.check(Some("token="), None, None, NOW),
            Err(AuthError::Malformed("query"))
        );
        assert_eq!(
            a.check(Some("token=%zz"), None, None, NOW),
            Err(AuthError::Malformed("query"))
        );
        let long = format!("token={}", "a".repeat(TOKEN_BYTES_MAX + 1));
        assert_eq!(
            a.check(Some(&long), None, None, NOW),
            Err(AuthError::TokenTooLong)
        );
        assert_eq!(
            a.check(None, Some("Bearer a.b"), None, NOW),
            Err(AuthError::Malformed("structure"))
        );
    }

    #[test]
    fn key_rotation_and_kid_selection() {
        let old = b"old-secret-old-secret-old-secret-0000".to_vec();
        let new = b"new-secret-new-secret-new-secret-1111".to_vec();
        let cfg = AuthConfig {
            hs256_secrets: vec![
                Hs256Secret {
                    kid: Some("2024".into()),
                    secret: old.clone(),
                },
                Hs256Secret {
                    kid: Some("2025".into()),
                    secret: new.clone(),
                },
            ],
            ed25519_public_keys: vec![
                Ed25519PublicKey {
                    kid: Some("ed-a".into()),
                    public_key: public_key_pem(&[1; 32]),
                },
                Ed25519PublicKey {
                    kid: Some("ed-b".into()),
                    public_key: public_key_pem(&SEED),
                },
            ],
            ..config()
        };
        let a = auth(&cfg);
        let p = payload(NOW + 60);
        for (secret, kid) in [(&old, "2024"), (&new, "2025")] {
            let t = hs256_token(secret, &format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &p);
            assert!(a.verify(t.as_bytes(), NOW).is_ok(), "{kid}");
        }
        // Without kid, every key of the kind is tried.
        assert!(a
            .verify(hs256_token(&old, r#"{"alg":"HS256"}"#, &p).as_bytes(), NOW)
            .is_ok());
        // kid selects: the right secret under the wrong kid fails.
        let t = hs256_token(&old, r#"{"alg":"HS256","kid":"2025"}"#, &p);
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::BadSignature));
        let t = hs256_token(&old, r#"{"alg":"HS256","kid":"1999"}"#, &p);
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::UnknownKey));
        let t = eddsa_token(&SEED, r#"{"alg":"EdDSA","kid":"ed-b"}"#, &p);
        assert!(a.verify(t.as_bytes(), NOW).is_ok());
        let t = eddsa_token(&SEED, r#"{"alg":"EdDSA","kid":"ed-a"}"#, &p);
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn crit_header_refused() {
        let a = auth(&config());
        let t = hs256_token(
            SECRET,
            r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
            &payload(NOW + 60),
        );
        assert_eq!(a.verify(t.as_bytes(), NOW), Err(AuthError::CriticalHeader));
    }

    #[test]
    fn audience_and_issuer() {
        let cfg = AuthConfig {
            audience: Some("switchboard".into()),
            issuer: Some("https://id.example.com".into()),
            ..config()
        };
        let a = auth(&cfg);
        let ok = [
            format!(
                r#"{{"exp":{},"aud":"switchboard","iss":"https://id.example.com"}}"#,
                NOW + 60
            ),
            format!(
                r#"{{"exp":{},"aud":["x","switchboard"],"iss":"https://id.example.com"}}"#,
                NOW + 60
            ),
        ];
        for p in &ok {
            assert!(
                a.verify(hs256_token(SECRET, r#"{"alg":"HS256"}"#, p).as_bytes(), NOW)
                    .is_ok(),
                "{p}"
            );
        }
        let bad = [
            (
                format!(
                    r#"{{"exp":{},"aud":"other","iss":"https://id.example.com"}}"#,
                    NOW + 60
                ),
                AuthError::WrongAudience,
            ),
            (
                format!(r#"{{"exp":{},"iss":"https://id.example.com"}}"#, NOW + 60),
                AuthError::WrongAudience,
            ),
            (
                format!(r#"{{"exp":{},"aud":"switchboard"}}"#, NOW + 60),
                AuthError::WrongIssuer,
            ),
            (
                format!(r#"{{"exp":{},"aud":"switchboard","iss":"evil"}}"#, NOW + 60),
                AuthError::WrongIssuer,
            ),
            (
                format!(
                    r#"{{"exp":{},"aud":[1],"iss":"https://id.example.com"}}"#,
                    NOW + 60
                ),
                AuthError::InvalidClaim("aud"),
            ),
        ];
        for (p, want) in &bad {
            assert_eq!(
                a.verify(hs256_token(SECRET, r#"{"alg":"HS256"}"#, p).as_bytes(), NOW),
                Err(*want),
                "{p}"
            );
        }
        // No audience configured: a token that names one is not for us.
        let p = format!(r#"{{"exp":{},"aud":"switchboard"}}"#, NOW + 60);
        assert_eq!(
            auth(&config()).verify(
                hs256_token(SECRET, r#"{"alg":"HS256"}"#, &p).as_bytes(),
                NOW
            ),
            Err(AuthError::WrongAudience)
        );
    }

    #[test]
    fn claim_types() {
        let a = auth(&config());
        for (p, name) in [
            (format!(r#"{{"exp":{},"sub":5}}"#, NOW + 60), "sub"),
            (
                format!(r#"{{"exp":{},"rooms":"lobby"}}"#, NOW + 60),
                "rooms",
            ),
            (
                format!(r#"{{"exp":{},"rooms":["a",1]}}"#, NOW + 60),
                "rooms",
            ),
            (format!(r#"{{"exp":{},"admin":"true"}}"#, NOW + 60), "admin"),
        ] {
            let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &p);
            assert_eq!(
                a.verify(t.as_bytes(), NOW),
                Err(AuthError::InvalidClaim(name)),
                "{p}"
            );
        }
        let minimal = format!(r#"{{"exp":{}}}"#, NOW + 60);
        let c = a
            .verify(
                hs256_token(SECRET, r#"{"alg":"HS256"}"#, &minimal).as_bytes(),
                NOW,
            )
            .unwrap();
        assert_eq!(
            c,
            Claims {
                sub: None,
                rooms: None,
                admin: false,
                exp: NOW + 60
            }
        );
    }

    #[test]
    fn malformed_shapes() {
        let a = auth(&config());
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW + 60));
        let cases: [(String, &str); 6] = [
            (format!("{t}.extra"), "structure"),
            (t.replacen('.', "", 1), "structure"),
            (format!("!!{t}"), "header"),
            (format!("{t}="), "signature"),
            (format!("{}A", t), "signature"),
            (
                format!(
                    "{}.{}.{}",
                    b64(b"{\"alg\":\"HS256\"}"),
                    "e30",
                    b64(&[0u8; 31])
                ),
                "signature",
            ),
        ];
        for (tok, part) in &cases {
            assert_eq!(
                a.verify(tok.as_bytes(), NOW),
                Err(AuthError::Malformed(part)),
                "{tok}"
            );
        }
    }

    #[test]
    fn origin_allow_list() {
        let cfg = AuthConfig {
            required: false,
            origins: vec![
                "https://app.example.com".into(),
                "http://127.0.0.1:8080".into(),
                "https://*.example.org".into(),
            ],
            ..config()
        };
        let a = auth(&cfg);
        for o in [
            "https://app.example.com",
            "HTTPS://APP.EXAMPLE.COM",
            "http://127.0.0.1:8080",
            "https://a.example.org",
            "https://a.b-c.example.org",
        ] {
            assert_eq!(a.check(None, None, Some(o), NOW), Ok(None), "{o}");
        }
        for o in [
            "https://evil.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.com",
            "http://127.0.0.1:8081",
            "https://example.org",
            "https://.example.org",
            "https://a..example.org",
            "https://evilexample.org",
            "https://a.example.org:444",
            "http://a.example.org",
            "https://a/b.example.org",
            "null",
        ] {
            let e = a.check(None, None, Some(o), NOW).unwrap_err();
            assert_eq!((e, e.status()), (AuthError::OriginNotAllowed, 403), "{o}");
        }
        // No Origin header (not a browser) passes the list; empty list allows all.
        assert_eq!(a.check(None, None, None, NOW), Ok(None));
        let any = auth(&AuthConfig {
            required: false,
            ..config()
        });
        assert_eq!(
            any.check(None, None, Some("https://anything.test"), NOW),
            Ok(None)
        );
        // Origin is checked before the token.
        let t = hs256_token(SECRET, r#"{"alg":"HS256"}"#, &payload(NOW + 60));
        assert_eq!(
            a.check(None, Some(&bearer(&t)), Some("https://evil.com"), NOW),
            Err(AuthError::OriginNotAllowed)
        );
    }

    #[test]
    fn bad_configs() {
        let bad = |cfg: AuthConfig| Authenticator::new(&cfg).unwrap_err();
        assert_eq!(
            bad(AuthConfig {
                required: true,
                ..AuthConfig::default()
            }),
            AuthConfigError::NoKeys
        );
        assert_eq!(
            bad(AuthConfig {
                hs256_secrets: vec![Hs256Secret {
                    kid: None,
                    secret: b"short".to_vec()
                }],
                ..config()
            }),
            AuthConfigError::SecretTooShort { index: 0 }
        );
        for key in [
            "",
            "not base64!",
            "AAAA",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        ] {
            let cfg = AuthConfig {
                ed25519_public_keys: vec![
                    Ed25519PublicKey {
                        kid: None,
                        public_key: public_key_pem(&SEED),
                    },
                    Ed25519PublicKey {
                        kid: None,
                        public_key: key.into(),
                    },
                ],
                ..config()
            };
            assert_eq!(
                bad(cfg),
                AuthConfigError::BadPublicKey { index: 1 },
                "{key:?}"
            );
        }
        // The identity point is a valid encoding but of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let cfg = AuthConfig {
            ed25519_public_keys: vec![Ed25519PublicKey {
                kid: None,
                public_key: B64URL.encode(identity),
            }],
            ..config()
        };
        assert_eq!(bad(cfg), AuthConfigError::WeakPublicKey { index: 0 });
        for o in [
            "example.com",
            "https://example.com/",
            "https://*",
            "https://a.*.com",
            "https://",
            "*",
        ] {
            let cfg = AuthConfig {
                origins: vec![o.into()],
                ..config()
            };
            assert_eq!(bad(cfg), AuthConfigError::BadOrigin { index: 0 }, "{o}");
        }
        let many = AuthConfig {
            hs256_secrets: (0..KEYS_MAX)
                .map(|_| Hs256Secret {
                    kid: None,
                    secret: SECRET.to_vec(),
                })
                .collect(),
            ..config()
        };
        assert_eq!(bad(many), AuthConfigError::TooManyKeys);
    }

    #[test]
    fn room_prefix_matching() {
        let c = Claims {
            sub: None,
            rooms: Some(vec!["lobby".into(), "team-*".into()]),
            admin: false,
            exp: 0,
        };
        assert!(c.may_join("lobby"));
        assert!(c.may_join("team-"));
        assert!(c.may_join("team-red"));
        assert!(!c.may_join("lobby2"));
        assert!(!c.may_join("team"));
        assert!(!c.may_join("Team-red"));
        let everything = Claims {
            rooms: Some(vec!["*".into()]),
            ..c.clone()
        };
        assert!(everything.may_join("anything"));
        let nothing = Claims {
            rooms: Some(vec![]),
            ..c.clone()
        };
        assert!(!nothing.may_join("lobby"));
        let unrestricted = Claims { rooms: None, ..c };
        assert!(unrestricted.may_join("lobby"));
        assert_eq!(AuthError::RoomNotAllowed.status(), 403);
    }
}
