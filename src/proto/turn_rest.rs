//! Short-lived TURN credentials in the "TURN REST API" form that coturn checks with
//! `use-auth-secret` / `static-auth-secret`.
//!
//! The server and the TURN relay share a secret. For each session the server hands out
//! the username `<expiry-unix-seconds>:<session-id>` and the password
//! `base64(HMAC-SHA1(secret, username))`; the relay recomputes the password from the
//! username and refuses the allocation once the expiry has passed. Nothing is stored on
//! either side, and a leaked credential dies with its expiry.
//!
//! Driving it:
//!
//! 1. When a session starts (or asks for fresh ICE servers), call [`credentials`] with the
//!    shared secret, the session id, the current time and the lifetime to grant.
//! 2. Append the `iceServers` entry with [`write_ice_server`] into the message being built.
//!
//! The clock is an argument, as everywhere under `proto`.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Length of the credential: base64 of a 20-byte HMAC-SHA1, padded.
pub const CREDENTIAL_LEN: usize = 28;

/// Computes the TURN REST `(username, credential)` pair.
///
/// The username is `<now_unix_s + ttl_s>:<session_id>` (the expiry saturates instead of
/// wrapping) and the credential is the padded standard base64 of
/// HMAC-SHA1(`secret`, username), which is what coturn recomputes. coturn takes the
/// expiry from before the *first* `:`, so a session id may itself contain colons.
#[must_use]
pub fn credentials(
    secret: &[u8],
    session_id: &str,
    now_unix_s: u64,
    ttl_s: u64,
) -> (String, String) {
    let expiry_unix_s = now_unix_s.saturating_add(ttl_s);
    let username = format!("{expiry_unix_s}:{session_id}");
    let credential = credential(secret, &username);
    let credential = String::from_utf8(credential.to_vec())
        .unwrap_or_else(|_| unreachable!("base64 output is ASCII"));
    (username, credential)
}

/// The credential for an already-built username: base64(HMAC-SHA1(`secret`, `username`)).
#[must_use]
pub fn credential(secret: &[u8], username: &str) -> [u8; CREDENTIAL_LEN] {
    // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
    let mut mac = match <Hmac<Sha1> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(username.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut out = [0u8; CREDENTIAL_LEN];
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(tag, &mut out)
        .unwrap_or_else(|_| unreachable!("28 bytes hold the base64 of 20 bytes"));
    debug_assert_eq!(n, CREDENTIAL_LEN);
    out
}

/// Appends one `iceServers` entry,
/// `{"urls":[...],"username":"...","credential":"..."}`, to `out`.
///
/// Every string is escaped as a JSON string, so a session id or URL holding quotes,
/// backslashes or control characters cannot break out of the object.
pub fn write_ice_server(out: &mut Vec<u8>, urls: &[&str], username: &str, credential: &str) {
    out.extend_from_slice(b"{\"urls\":[");
    for (i, url) in urls.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, url);
    }
    out.extend_from_slice(b"],\"username\":");
    write_json_str(out, username);
    out.extend_from_slice(b",\"credential\":");
    write_json_str(out, credential);
    out.push(b'}');
}

/// Appends `s` as a quoted JSON string (RFC 8259 §7): `"` and `\` escaped, control
/// characters as `\n`, `\r`, `\t` or `\u00XX`; everything else, UTF-8 included, as is.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with Python:
    // base64.b64encode(hmac.new(secret, username.encode(), hashlib.sha1).digest())
    #[test]
    fn known_vector_matches_python_hmac() {
        let (user, pass) = credentials(b"north-secret", "sess-42", 1_700_000_000, 86_400);
        assert_eq!(user, "1700086400:sess-42");
        assert_eq!(pass, "phkeQJ92Q6EkswI1inU+3KMRjfs=");
    }

    #[test]
    fn session_id_with_colons_and_expiry_past_u32() {
        let (user, pass) = credentials(b"S", "a:b", 4_294_967_000, 296);
        assert_eq!(user, "4294967296:a:b");
        assert_eq!(pass, "mLxTquK3DFK/ZpRyn0ASqteINCc=");
    }

    #[test]
    fn expiry_saturates() {
        let (user, _) = credentials(b"S", "x", u64::MAX - 1, 10);
        assert_eq!(user, format!("{}:x", u64::MAX));
    }

    #[test]
    fn ice_server_entry_is_valid_escaped_json() {
        let mut out = b"[".to_vec();
        write_ice_server(
            &mut out,
            &["turn:127.0.0.1:3478?transport=udp", "turn:h\"x\\y:3478"],
            "1:se\"ss\n\u{1}é",
            "abc/+=",
        );
        out.push(b']');
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "[{\"urls\":[\"turn:127.0.0.1:3478?transport=udp\",\"turn:h\\\"x\\\\y:3478\"],\
             \"username\":\"1:se\\\"ss\\n\\u0001é\",\"credential\":\"abc/+=\"}]"
        );
        let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed[0]["username"], "1:se\"ss\n\u{1}é");
        assert_eq!(parsed[0]["urls"][1], "turn:h\"x\\y:3478");
    }

    #[test]
    fn empty_url_list() {
        let mut out = Vec::new();
        write_ice_server(&mut out, &[], "u", "c");
        assert_eq!(
            out,
            b"{\"urls\":[],\"username\":\"u\",\"credential\":\"c\"}"
        );
    }
}
