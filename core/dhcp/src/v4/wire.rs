//! The framing of a DHCPv4 payload, checked byte by byte before any option
//! is read: the decoder library is lenient (it read a truncated subnet mask
//! as none, and so a classful /8), and a lenient reading of hostile input
//! is how a bad lease gets applied.

use crate::DropReason;

/// Where the fixed BOOTP header ends and the magic cookie starts.
const COOKIE_AT: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_OVERLOAD: u8 = 52;

/// The length an option must have when it has exactly one (RFC 2132).
fn fixed_len(code: u8) -> Option<usize> {
    match code {
        // Subnet mask, broadcast address, lease time, server identifier,
        // T1, T2.
        1 | 28 | 51 | 54 | 58 | 59 => Some(4),
        // Interface MTU.
        26 => Some(2),
        // Option overload, message type.
        52 | 53 => Some(1),
        _ => None,
    }
}

/// Checks the framing of a DHCPv4 payload before any option is read. The
/// rule (RFC 2131 section 3 and 4.1, RFC 2132 sections 2, 3 and 9.3):
/// options are `code, length, value` up to the END option, so a wrong magic
/// cookie, an option whose length runs past its field, an options field
/// that ends without END (a packet cut mid-option) or an option whose
/// length cannot hold its type (a subnet mask of 2 bytes) means the packet
/// was cut or forged: nothing in it can be trusted, and the whole packet is
/// dropped as malformed. An option repeated is concatenated first (RFC
/// 3396), so a split option is checked as a whole.
pub(crate) fn check_framing(p: &[u8]) -> Result<(), DropReason> {
    let malformed = DropReason::Malformed;
    if p.len() < COOKIE_AT + 4 || p[COOKIE_AT..COOKIE_AT + 4] != MAGIC {
        return Err(malformed);
    }
    let mut lens = [None; 256];
    let mut overload = 0u8;
    walk_options(&p[COOKIE_AT + 4..], true, &mut lens, &mut overload)?;
    // RFC 2131 section 4.1: `file` (bit 1) is read before `sname` (bit 2).
    if overload & 1 != 0 {
        walk_options(&p[108..COOKIE_AT], false, &mut lens, &mut 0)?;
    }
    if overload & 2 != 0 {
        walk_options(&p[44..108], false, &mut lens, &mut 0)?;
    }
    for (code, len) in lens.iter().enumerate() {
        // Options absent are fine; present, even empty, they must fit.
        let Some(len) = *len else { continue };
        let fits = match (code as u8, fixed_len(code as u8)) {
            (_, Some(n)) => len == n,
            // Routers, name servers: one or more addresses.
            (3 | 6, _) => len % 4 == 0,
            _ => true,
        };
        if !fits {
            return Err(malformed);
        }
    }
    Ok(())
}

/// Walks one options field, adding up each code's length in `lens`. The
/// main field must end with END (RFC 2131 section 4.1); an overloaded
/// `file` or `sname` field may instead be padded to its end.
fn walk_options(
    area: &[u8],
    need_end: bool,
    lens: &mut [Option<usize>; 256],
    overload: &mut u8,
) -> Result<(), DropReason> {
    let mut i = 0;
    while i < area.len() {
        match area[i] {
            OPT_PAD => i += 1,
            OPT_END => return Ok(()),
            code => {
                let len = usize::from(*area.get(i + 1).ok_or(DropReason::Malformed)?);
                let value = area.get(i + 2..i + 2 + len).ok_or(DropReason::Malformed)?;
                if code == OPT_OVERLOAD && len == 1 {
                    *overload = value[0];
                }
                *lens[usize::from(code)].get_or_insert(0) += len;
                i += 2 + len;
            }
        }
    }
    if need_end {
        Err(DropReason::Malformed)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload with a zero BOOTP header, the cookie and `opts`.
    fn raw(opts: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; COOKIE_AT];
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, 5, 54, 4, 10, 9, 0, 1]);
        p.extend_from_slice(opts);
        p
    }

    const MALFORMED: Result<(), DropReason> = Err(DropReason::Malformed);

    #[test]
    fn well_framed_options_pass() {
        assert_eq!(check_framing(&raw(&[1, 4, 255, 255, 255, 0, 255])), Ok(()));
        // Padding before and after END.
        assert_eq!(
            check_framing(&raw(&[0, 1, 4, 255, 255, 255, 0, 255, 0, 0])),
            Ok(())
        );
        // RFC 3396: a split option is checked as a whole.
        assert_eq!(
            check_framing(&raw(&[1, 2, 255, 255, 1, 2, 255, 0, 255])),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_magic_cookie_drops_the_packet() {
        let mut p = raw(&[1, 4, 255, 255, 255, 0, 255]);
        p[COOKIE_AT..COOKIE_AT + 4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(check_framing(&p), MALFORMED);
        assert_eq!(check_framing(&p[..COOKIE_AT + 2]), MALFORMED);
        assert_eq!(check_framing(&[]), MALFORMED);
    }

    #[test]
    fn a_truncated_option_drops_the_packet() {
        // A subnet mask of length 4 with 2 bytes before the end, no END.
        assert_eq!(check_framing(&raw(&[1, 4, 255, 255])), MALFORMED);
        // A length past the end of the packet.
        assert_eq!(
            check_framing(&raw(&[1, 4, 255, 255, 255, 0, 12, 200, b'a', b'b', 255])),
            MALFORMED
        );
        // The length byte itself missing.
        assert_eq!(
            check_framing(&raw(&[1, 4, 255, 255, 255, 0, 12])),
            MALFORMED
        );
    }

    #[test]
    fn an_options_field_without_end_drops_the_packet() {
        assert_eq!(check_framing(&raw(&[1, 4, 255, 255, 255, 0])), MALFORMED);
        assert_eq!(
            check_framing(&raw(&[1, 4, 255, 255, 255, 0, 0, 0])),
            MALFORMED
        );
    }

    #[test]
    fn a_length_that_does_not_fit_the_type_drops_the_packet() {
        for tail in [
            &[1, 2, 255, 255, 255][..],
            &[1, 5, 255, 255, 255, 0, 0, 255],
            &[1, 0, 255],
            &[26, 4, 0, 0, 5, 220, 255],
            &[51, 2, 0, 120, 255],
            &[58, 8, 0, 0, 0, 1, 0, 0, 0, 1, 255],
            &[3, 6, 10, 9, 0, 1, 10, 9, 255],
            &[6, 3, 10, 9, 0, 255],
            &[53, 1, 5, 255],
        ] {
            assert_eq!(check_framing(&raw(tail)), MALFORMED, "{tail:?}");
        }
    }

    #[test]
    fn overloaded_fields_are_checked_too() {
        let mut p = raw(&[52, 1, 1, 255]);
        // `file` holds options now: one that runs past the field.
        p[108] = 12;
        p[109] = 200;
        assert_eq!(check_framing(&p), MALFORMED);
        p[109] = 2;
        assert_eq!(check_framing(&p), Ok(()));
        // `sname` too, and a mask there still has to be 4 bytes.
        let mut p = raw(&[52, 1, 2, 255]);
        p[44..47].copy_from_slice(&[1, 1, 255]);
        assert_eq!(check_framing(&p), MALFORMED);
    }
}
