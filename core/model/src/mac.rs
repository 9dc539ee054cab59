//! Ethernet MAC addresses and the three ways a request can name one.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::ParseError;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// True for group (multicast or broadcast) addresses: bit 0 of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for locally administered addresses: bit 1 of the first octet.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A random locally administered unicast address.
    pub fn random_local() -> MacAddr {
        let mut b = [0u8; 6];
        crate::random::fill(&mut b);
        b[0] = (b[0] & 0xfc) | 0x02;
        MacAddr(b)
    }

    /// network-wrapper's scheme: `XX:IP:IP:IP:YY:ZZ`, `XX` random with
    /// its two low bits `10` (unicast, locally administered), then the last
    /// three octets of the host's IPv4 address, then two random octets.
    pub fn network_wrapper(host: std::net::Ipv4Addr) -> MacAddr {
        let mut r = [0u8; 3];
        crate::random::fill(&mut r);
        let o = host.octets();
        MacAddr([(r[0] & 0xfc) | 0x02, o[1], o[2], o[3], r[1], r[2]])
    }

    /// MD5 of the string followed by a newline, first five bytes, after
    /// `02`: the original's `U:` rule for a string its `echo` leaves
    /// alone. For MACs pipework derives itself (declarations, the shim);
    /// `U:<string>` goes through [`MacAddr::from_u_string`].
    pub fn from_unique_string(s: &str) -> MacAddr {
        MacAddr::from_echoed(&[s.as_bytes(), b"\n"].concat())
    }

    /// The original pipework's `U:<string>`, for every string: its line
    /// `MACADDR=$(echo $macunique|md5sum|sed 's/^\(..\)...$/02:\1:...:\5/')`,
    /// `$macunique` unquoted, as bash runs it. See [`echo_unquoted`].
    pub fn from_u_string(s: &str) -> MacAddr {
        MacAddr::from_echoed(&echo_unquoted(s))
    }

    fn from_echoed(out: &[u8]) -> MacAddr {
        let d = Md5::digest(out);
        MacAddr([0x02, d[0], d[1], d[2], d[3], d[4]])
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds from a netlink attribute, which may be any length for odd link types.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ParseError::new("MAC address", s, why);
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad("expected six hex octets like 02:42:ac:11:00:02"));
        }
        let mut b = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || p.len() > 2 {
                return Err(bad("each octet is one or two hex digits"));
            }
            b[i] = u8::from_str_radix(p, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        Ok(MacAddr(b))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How the request names the guest interface's MAC address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MacSpec {
    /// No MAC given: a random locally administered unicast address.
    #[default]
    Random,
    /// An explicit unicast address.
    Explicit(MacAddr),
    /// `U:<string>`: derived from the string, stable across runs.
    Unique(String),
    /// `--mac-scheme network-wrapper`: network-wrapper's
    /// `XX:IP:IP:IP:YY:ZZ` (see [`MacAddr::network_wrapper`]), from the
    /// host's IPv4 address, which the attach finds.
    NetworkWrapper,
}

impl MacSpec {
    /// Parses the MAC part of the 4th positional (`<mac>` or `U:<string>`).
    pub fn parse(s: &str) -> Result<MacSpec, ParseError> {
        // `U:` alone is the original's MAC of an empty line.
        if let Some(rest) = s.strip_prefix("U:").or_else(|| s.strip_prefix("u:")) {
            return Ok(MacSpec::Unique(rest.to_string()));
        }
        let mac: MacAddr = s.parse()?;
        if mac.is_multicast() {
            return Err(ParseError::new(
                "MAC address",
                s,
                "is a multicast address (lowest bit of the first octet is set)",
            ));
        }
        if mac.is_zero() {
            return Err(ParseError::new("MAC address", s, "is all zeros"));
        }
        Ok(MacSpec::Explicit(mac))
    }

    /// The concrete address; `Random` draws a new one on every call.
    pub fn resolve(&self) -> MacAddr {
        match self {
            MacSpec::Random => MacAddr::random_local(),
            MacSpec::Explicit(m) => *m,
            MacSpec::Unique(s) => MacAddr::from_u_string(s),
            // The attach derives it from the host's address before this
            // is reached; random is the scheme's own fallback shape.
            MacSpec::NetworkWrapper => MacAddr::random_local(),
        }
    }
}

/// The bytes bash's builtin `echo $s` writes, `$s` unquoted, with the
/// default `IFS` and no file matching a glob (the original's `U:` line):
///
/// - word splitting on space, tab and newline: runs collapse, the ends go;
/// - pathname expansion: not done (a glob word stays as it is, which is
///   what bash does too when nothing matches it; see the README);
/// - leading words made only of `-` and `n`, `e`, `E` are options: `n`
///   drops the final newline, `e` turns backslash escapes on, `E` off;
/// - the other words are written separated by one space, then a newline;
/// - with `-e`, the escapes of bash's `echo -e` (`\a \b \c \e \E \f \n \r
///   \t \v \\ \0nnn \xHH \uHHHH \UHHHHHHHH`), `\u`/`\U` written as UTF-8
///   as in a UTF-8 locale; `\c` ends the output, newline included.
///
/// Bash's `echo` without `xpg_echo`: a `/bin/sh` that is dash reads
/// backslashes even without `-e`; the original names `#!/bin/sh`, but the
/// bash reading is the one its users on bash systems got and is the one
/// kept here.
pub fn echo_unquoted(s: &str) -> Vec<u8> {
    let words: Vec<&str> = s
        .split([' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
        .collect();
    let mut newline = true;
    let mut escapes = false;
    let mut first = 0;
    for w in &words {
        let Some(flags) = w.strip_prefix('-') else {
            break;
        };
        if flags.is_empty() || !flags.bytes().all(|b| matches!(b, b'n' | b'e' | b'E')) {
            break;
        }
        for b in flags.bytes() {
            match b {
                b'n' => newline = false,
                b'e' => escapes = true,
                _ => escapes = false,
            }
        }
        first += 1;
    }
    let mut out = Vec::new();
    let words = &words[first..];
    for (i, w) in words.iter().enumerate() {
        if escapes {
            if unescape_echo(w.as_bytes(), &mut out) {
                return out;
            }
        } else {
            out.extend_from_slice(w.as_bytes());
        }
        if i + 1 < words.len() {
            out.push(b' ');
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

/// One word through bash's `ansicstr` as `echo -e` calls it; true at `\c`.
fn unescape_echo(w: &[u8], out: &mut Vec<u8>) -> bool {
    // Up to `max` digits of `radix` from `w[*j..]`; how many there were.
    fn digits(w: &[u8], j: &mut usize, radix: u32, max: usize) -> (u32, usize) {
        let (mut v, mut n) = (0u32, 0);
        while n < max {
            match w.get(*j).and_then(|&b| char::from(b).to_digit(radix)) {
                Some(d) => v = v.wrapping_mul(radix).wrapping_add(d),
                None => break,
            }
            *j += 1;
            n += 1;
        }
        (v, n)
    }
    let mut j = 0;
    while j < w.len() {
        let c = w[j];
        j += 1;
        if c != b'\\' || j == w.len() {
            out.push(c);
            continue;
        }
        let e = w[j];
        j += 1;
        match e {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'e' | b'E' => out.push(0x1b),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\\' => out.push(b'\\'),
            b'c' => return true,
            // `\0` and up to three octal digits; `\1`..`\7` stay as they are.
            b'0' => out.push((digits(w, &mut j, 8, 3).0 & 0xff) as u8),
            b'x' => match digits(w, &mut j, 16, 2) {
                (_, 0) => out.extend_from_slice(b"\\x"),
                (v, _) => out.push(v as u8),
            },
            b'u' | b'U' => match digits(w, &mut j, 16, if e == b'u' { 4 } else { 8 }) {
                (_, 0) => out.extend_from_slice(&[b'\\', e]),
                (v, _) => utf8_any(v, out),
            },
            _ => out.extend_from_slice(&[b'\\', e]),
        }
    }
    false
}

/// A code point as bash's `u32toutf8` writes it: UTF-8, surrogates and
/// values past U+10FFFF included (up to six bytes), nothing from 2^31 up.
fn utf8_any(v: u32, out: &mut Vec<u8>) {
    let cont = |shift: u32| 0x80 | ((v >> shift) & 0x3f) as u8;
    match v {
        0..=0x7f => out.push(v as u8),
        0x80..=0x7ff => out.extend_from_slice(&[0xc0 | (v >> 6) as u8, cont(0)]),
        0x800..=0xffff => out.extend_from_slice(&[0xe0 | (v >> 12) as u8, cont(6), cont(0)]),
        0x1_0000..=0x1f_ffff => {
            out.extend_from_slice(&[0xf0 | (v >> 18) as u8, cont(12), cont(6), cont(0)])
        }
        0x20_0000..=0x3ff_ffff => {
            out.extend_from_slice(&[0xf8 | (v >> 24) as u8, cont(18), cont(12), cont(6), cont(0)])
        }
        0x400_0000..=0x7fff_ffff => out.extend_from_slice(&[
            0xfc | (v >> 30) as u8,
            cont(24),
            cont(18),
            cont(12),
            cont(6),
            cont(0),
        ]),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_string_matches_the_original_readme() {
        assert_eq!(
            MacAddr::from_unique_string("myhost.foo.com").to_string(),
            "02:72:6c:cd:9b:8d"
        );
    }

    /// The cases of issue 13, computed by the original's line under bash.
    #[test]
    fn u_strings_as_the_original_echo_leaves_them() {
        for (s, mac) in [
            ("x  y", "02:ee:e9:f5:09:dc"),
            ("", "02:68:b3:29:da:98"),
            ("-n", "02:d4:1d:8c:d9:8f"),
        ] {
            assert_eq!(MacAddr::from_u_string(s).to_string(), mac, "{s:?}");
        }
        assert_eq!(echo_unquoted("  a\tb\n c  "), b"a b c\n");
        assert_eq!(echo_unquoted("-n -e a\\tb"), b"a\tb");
        assert_eq!(echo_unquoted("-e a\\cb c"), b"a");
        assert_eq!(echo_unquoted("-nx a"), b"-nx a\n");
        assert_eq!(echo_unquoted("- a"), b"- a\n");
        assert_eq!(echo_unquoted("-eE a\\tb"), b"a\\tb\n");
        assert_eq!(
            echo_unquoted("-e \\0101\\x41\\x\\u00e9\\1\\q\\"),
            "AA\\x\u{e9}\\1\\q\\\n".as_bytes()
        );
        assert_eq!(echo_unquoted("-e \\ud800\\U80000000."), b"\xed\xa0\x80.\n");
    }

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "26:2E:71:98:60:8f".parse().unwrap();
        assert_eq!(m.to_string(), "26:2e:71:98:60:8f");
        assert!("26:2e:71:98:60".parse::<MacAddr>().is_err());
        assert!("26:2e:71:98:60:8g".parse::<MacAddr>().is_err());
        assert!("26:2e:71:98:60:800".parse::<MacAddr>().is_err());
    }

    #[test]
    fn rejects_multicast_and_zero() {
        assert!(MacSpec::parse("01:00:5e:00:00:01").is_err());
        assert!(MacSpec::parse("ff:ff:ff:ff:ff:ff").is_err());
        assert!(MacSpec::parse("00:00:00:00:00:00").is_err());
        assert_eq!(MacSpec::parse("U:").unwrap(), MacSpec::Unique("".into()));
        assert_eq!(
            MacSpec::parse("U:web1").unwrap(),
            MacSpec::Unique("web1".into())
        );
    }

    #[test]
    fn random_is_local_unicast() {
        for _ in 0..100 {
            let m = MacAddr::random_local();
            assert!(m.is_local() && !m.is_multicast());
        }
    }
}
