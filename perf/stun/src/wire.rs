//! The few STUN bytes the benchmark needs, written by hand (RFC 8489 §5, §14.2): a bare
//! 20-byte Binding request, the check of an answer, and the minimal 32-byte answer.

use std::net::{Ipv4Addr, SocketAddrV4};

pub const HEADER_BYTES: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_a442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const FAMILY_IPV4: u8 = 0x01;

/// Bytes of the minimal answer: header + XOR-MAPPED-ADDRESS (4 + 8) for IPv4.
pub const MINIMAL_ANSWER_BYTES: usize = HEADER_BYTES + 12;

/// Transaction ids carry the client's bookkeeping: the request's sequence number (bytes
/// 8..16 of the message) and its outstanding slot (bytes 16..20). A late or stray answer is
/// recognised by a sequence number that no longer matches its slot.
pub fn encode_request(out: &mut [u8], seq: u64, slot: u32) -> usize {
    out[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    out[2..4].copy_from_slice(&0u16.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..16].copy_from_slice(&seq.to_be_bytes());
    out[16..20].copy_from_slice(&slot.to_be_bytes());
    HEADER_BYTES
}

/// What an answer says about our bookkeeping.
pub struct Answer {
    pub seq: u64,
    pub slot: u32,
    /// XOR-MAPPED-ADDRESS, when present and IPv4.
    pub mapped: Option<SocketAddrV4>,
}

/// Checks a Binding success response: header, cookie, length, and an attribute walk that
/// stays inside the datagram. `None` for anything else.
pub fn parse_answer(d: &[u8]) -> Option<Answer> {
    if d.len() < HEADER_BYTES {
        return None;
    }
    let kind = u16::from_be_bytes([d[0], d[1]]);
    let body = usize::from(u16::from_be_bytes([d[2], d[3]]));
    let cookie = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    if kind != BINDING_SUCCESS || cookie != MAGIC_COOKIE || HEADER_BYTES + body != d.len() {
        return None;
    }
    let seq = u64::from_be_bytes(d[8..16].try_into().ok()?);
    let slot = u32::from_be_bytes(d[16..20].try_into().ok()?);
    let mut mapped = None;
    let mut at = HEADER_BYTES;
    while at + 4 <= d.len() {
        let t = u16::from_be_bytes([d[at], d[at + 1]]);
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        let value = d.get(at + 4..at + 4 + len)?;
        if t == XOR_MAPPED_ADDRESS && len == 8 && value[1] == FAMILY_IPV4 {
            let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
            let ip = u32::from_be_bytes([value[4], value[5], value[6], value[7]]) ^ MAGIC_COOKIE;
            mapped = Some(SocketAddrV4::new(Ipv4Addr::from(ip), port));
        }
        // Attributes are padded to 4 bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    Some(Answer { seq, slot, mapped })
}

/// Whether `d` is a bare-enough Binding request to answer: right type, cookie, length
/// field matching the datagram. Attributes are not read (the reference answers only the
/// benchmark's bare requests; it is not a STUN server).
pub fn is_binding_request(d: &[u8]) -> bool {
    d.len() >= HEADER_BYTES
        && u16::from_be_bytes([d[0], d[1]]) == BINDING_REQUEST
        && HEADER_BYTES + usize::from(u16::from_be_bytes([d[2], d[3]])) == d.len()
        && u32::from_be_bytes([d[4], d[5], d[6], d[7]]) == MAGIC_COOKIE
}

/// Turns the request in `buf[..HEADER_BYTES]` into the 32-byte answer for `peer`, in place.
pub fn answer_in_place(buf: &mut [u8], peer: SocketAddrV4) -> usize {
    buf[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
    buf[2..4].copy_from_slice(&12u16.to_be_bytes());
    // Cookie and transaction id (bytes 4..20) stay as the request had them.
    buf[20..22].copy_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    buf[22..24].copy_from_slice(&8u16.to_be_bytes());
    buf[24] = 0;
    buf[25] = FAMILY_IPV4;
    let port = peer.port() ^ (MAGIC_COOKIE >> 16) as u16;
    buf[26..28].copy_from_slice(&port.to_be_bytes());
    let ip = u32::from(*peer.ip()) ^ MAGIC_COOKIE;
    buf[28..32].copy_from_slice(&ip.to_be_bytes());
    MINIMAL_ANSWER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_answer_round_trips() {
        let mut buf = [0u8; 64];
        let len = encode_request(&mut buf, 0x0102_0304_0506_0708, 77);
        assert!(is_binding_request(&buf[..len]));
        let peer = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 40000);
        let len = answer_in_place(&mut buf, peer);
        assert_eq!(len, 32);
        let a = parse_answer(&buf[..len]).unwrap();
        assert_eq!(
            (a.seq, a.slot, a.mapped),
            (0x0102_0304_0506_0708, 77, Some(peer))
        );
        assert!(parse_answer(&buf[..len - 1]).is_none());
    }

    #[test]
    fn xor_mapped_address_matches_rfc_5769() {
        // RFC 5769 §2.2: 192.0.2.1 port 32853 is sent as a1 47 e1 12 a6 43.
        let mut buf = [0u8; 64];
        encode_request(&mut buf, 1, 2);
        let peer = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 32853);
        answer_in_place(&mut buf, peer);
        assert_eq!(
            buf[20..32],
            [0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]
        );
    }
}
