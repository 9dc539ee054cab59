//! A `StateDir` keeps the directories it verified when it was opened: a
//! directory swapped behind its back (renamed away, a symbolic link put in
//! its place) does not redirect its writes, and a new `StateDir` refuses
//! the link. Directories missing at the start are still made when needed.

use std::path::PathBuf;

use pipework_base::state::StateDir;

/// A scratch directory under the target directory (not /tmp), removed when
/// the test ends, passed or not.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("held-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_swapped_state_directory_does_not_redirect_an_open_one() {
    let scratch = Scratch::new("swap");
    let top = &scratch.0;
    let root = top.join("state");
    let state = StateDir::open(&root).unwrap();
    state.write_file("attachments/1/a.json", b"{}").unwrap();

    // Swapped mid-operation: the real one moved away, a link to a
    // directory of someone else's in its place.
    let moved = top.join("moved");
    std::fs::rename(&root, &moved).unwrap();
    let elsewhere = top.join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("attachments")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &root).unwrap();

    state.write_file("attachments/1/b.json", b"{}").unwrap();
    state.write_file("locks/guest-1", b"").unwrap();
    assert!(moved.join("attachments/1/b.json").is_file());
    assert!(moved.join("locks/guest-1").is_file());
    assert!(!elsewhere.join("attachments/1").exists());
    assert_eq!(
        state.read_file("attachments/1/a.json").unwrap().as_deref(),
        Some(&b"{}"[..])
    );

    let err = StateDir::open(&root).unwrap_err().to_string();
    assert!(err.contains("refusing the state directory"), "{err}");
}

#[test]
fn a_directory_missing_at_opening_is_made_when_written() {
    let scratch = Scratch::new("later");
    let root = scratch.0.join("state");
    let state = StateDir::open(&root).unwrap();
    assert!(!root.join("leases").exists());
    state.write_file("leases/eth1.json", b"{}").unwrap();
    assert!(root.join("leases/eth1.json").is_file());
    assert_eq!(state.list("leases").unwrap(), vec!["eth1.json".to_string()]);
}
