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
    hot_functions_first();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
}

/// The functions a command runs, laid out together at the start of the
/// code (`link/hot-functions.txt`, made by `link/regen-hot-functions`).
///
/// Why: the kernel maps a program's code page by page as it is first
/// touched, each fault mapping the 64 KB around it; an attach runs about
/// 1 MB of functions scattered over 7 MB, so it took ~70 such faults,
/// each several microseconds in a VM. Laid out together they take about
/// a sixth of that (README, Benchmarks).
///
/// The list names symbols as the release profile mangles them; names the
/// linker does not find are skipped without a word, so a stale list costs
/// speed, never correctness (the bench's page-fault column shows it).
/// Only with LLD, which Rust links x86_64 Linux programs with since 1.90
/// (GNU ld has no such option); `PIPEWORK_HOT_FUNCTIONS=0` turns it off.
fn hot_functions_first() {
    println!("cargo:rerun-if-changed=link/hot-functions.txt");
    println!("cargo:rerun-if-env-changed=PIPEWORK_HOT_FUNCTIONS");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PIPEWORK_HOT_FUNCTIONS") == "0" || var("PROFILE") != "release" {
        return;
    }
    if var("TARGET") != "x86_64-unknown-linux-gnu" || !rustc_links_with_lld() {
        return;
    }
    // Another linker chosen by flags or by cargo's environment: GNU ld
    // would refuse the option.
    if std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some() {
        return;
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if [
        "fuse-ld",
        "linker-features",
        "link-self-contained",
        "linker=",
    ]
    .iter()
    .any(|f| flags.contains(f))
    {
        return;
    }
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-functions.txt");
    if list.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether this rustc links x86_64 Linux programs with its own LLD by
/// default (1.90 and later).
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let v = String::from_utf8_lossy(&out.stdout);
    let mut version = v
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().ok());
    matches!((version.next(), version.next()), (Some(Some(1)), Some(Some(m))) if m >= 90)
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
