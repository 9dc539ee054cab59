//! The VM lane itself: the kernel features the other kernel_* tests rely on.

use pipework_tests::*;

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn the_vm_kernel_has_what_the_lane_needs() {
    let mut s = Sandbox::new("smoke");
    s.ip_host(&["link", "add", "d0", "type", "dummy"]);
    s.ip_host(&[
        "link", "add", "link", "d0", "name", "d0.10", "type", "vlan", "id", "10",
    ]);
    let g = s.guest("g");
    assert!(link(&s.host, "d0.10").is_some());
    assert!(link(&g, "lo").is_some());
}
