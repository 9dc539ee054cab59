//! Link options for the `pipework` binary.

fn main() {
    // Relative relocations packed as DT_RELR (binutils 2.38, glibc 2.36:
    // Debian 12) instead of one 24-byte RELA entry each: the dynamic loader
    // reads a few kilobytes instead of ~290 KB of table at every start, and
    // a start is a large part of an attach (see README, Benchmarks). An
    // older linker ignores the option with a warning; the binary then
    // carries RELA as before.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
