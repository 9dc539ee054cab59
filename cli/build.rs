//! Link options for the `pipework` binary.

use std::path::Path;
use std::process::Command;

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if linux_gnu {
        // Relative relocations packed as DT_RELR (binutils 2.38, glibc 2.36:
        // Debian 12) instead of one 24-byte RELA entry each: the dynamic
        // loader reads a few kilobytes instead of ~290 KB of table at every
        // start, and a start is a large part of an attach (see README,
        // Benchmarks). An older linker ignores the option with a warning;
        // the binary then carries RELA as before.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if linux_gnu && !static_crt {
        static_unwinder();
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
}

/// The unwinder linked into the binary (GCC's `libgcc_eh.a`, as in the
/// static build) instead of `libgcc_s.so.1`. std needs an unwinder (the
/// DHCP decoders run under `catch_unwind`), and with the shared one every
/// start of pipework maps one more library, resolves its symbols and runs
/// its constructor (`__cpu_indicator_init`, a dozen `cpuid`s, each a trap
/// in a VM): A/B 0.92 of the attach time with libgcc_s (README,
/// Benchmarks). `+whole-archive` because a command-line library comes
/// before std in the link, where nothing asks for the unwinder yet; with
/// it defined, `--as-needed` drops libgcc_s. The static build links
/// libgcc_eh already. Skipped where the C compiler has no libgcc_eh (the
/// binary then needs libgcc_s as before).
fn static_unwinder() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = Path::new(&path);
    if !out.status.success() || !path.is_absolute() || !path.is_file() {
        return;
    }
    if let Some(dir) = path.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=gcc_eh");
    }
}
