//! Randomness for MAC addresses and temporary names.

/// Fills `buf` from the kernel's CSPRNG. Failure here means the machine cannot
/// give randomness at all, which nothing in pipework can work around.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the kernel random source is unavailable");
}

/// A random 32-bit number (DHCP transaction ids).
pub fn u32() -> u32 {
    let mut b = [0u8; 4];
    fill(&mut b);
    u32::from_le_bytes(b)
}

/// `n` lowercase hex characters.
pub fn hex(n: usize) -> String {
    let mut b = vec![0u8; n.div_ceil(2)];
    fill(&mut b);
    let mut s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s.truncate(n);
    s
}
