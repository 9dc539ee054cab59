//! How `pipework apply` reading and planning a file grows with its length.
//!
//! `cargo bench -p pipework-tests --bench apply_parse` (no root needed). For
//! N in 10,000, 20,000, 40,000 (or `PIPEWORK_BENCH_SIZES=1000,2000`) a file
//! of N attachment lines, each a guest interface of its own, ends with one
//! bad line: `apply` reads, parses and plans every line, then refuses the
//! file (exit 2) before touching anything. The binary is `PIPEWORK_BIN`,
//! else the one the tests use. Linear time shows as a flat µs/line column
//! and a ×2 time for ×2 lines (it was ×4.5: 7.4 s for 10k lines, 33 s for
//! 20k, before the intents were indexed).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pipework_tests::pipework_bin;

fn main() {
    let sizes: Vec<usize> = std::env::var("PIPEWORK_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 20_000, 40_000]);
    let bin = pipework_bin();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("apply-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench directory");
    println!(
        "pipework apply: read, parse and plan N lines ({})",
        bin.display()
    );
    println!(
        "{:>8} {:>10} {:>10} {:>9} {:>8}",
        "lines", "bytes", "time", "µs/line", "×prev"
    );
    let mut prev: Option<Duration> = None;
    for n in sizes {
        let file = dir.join(format!("{n}.conf"));
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "br0 -i eth{} netns:bench{i} 10.{}.{}.2/24  # line {}\n",
                i % 10,
                (i >> 8) & 255,
                i & 255,
                i + 1
            ));
        }
        text.push_str("br0\n");
        std::fs::write(&file, &text).expect("write the file");
        // Best of three: the machine may be shared.
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let o = Command::new(&bin)
                .args(["--state-dir"])
                .arg(dir.join("state"))
                .arg("apply")
                .arg(&file)
                .output()
                .expect("run pipework");
            best = best.min(t.elapsed());
            assert_eq!(
                o.status.code(),
                Some(2),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(&format!(":{}:", n + 1)), "{err}");
        }
        let ratio = prev.map(|p| format!("{:.2}", best.as_secs_f64() / p.as_secs_f64()));
        println!(
            "{n:>8} {:>10} {:>9.3}s {:>9.2} {:>8}",
            text.len(),
            best.as_secs_f64(),
            best.as_secs_f64() * 1e6 / n as f64,
            ratio.unwrap_or_else(|| "-".into())
        );
        prev = Some(best);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
