//! The unwinder the binary is linked with (`build.rs`: GCC's libgcc_eh in
//! place of libgcc_s) catches panics, on the main thread and on others,
//! as the DHCP decoders' `catch_unwind` needs. This test binary is linked
//! the same way as `pipework`.

use std::panic::{catch_unwind, set_hook, take_hook};

#[test]
fn a_panic_unwinds_to_catch_unwind_on_any_thread() {
    let hook = take_hook();
    set_hook(Box::new(|_| {}));
    let index = std::hint::black_box(3usize);
    let caught = catch_unwind(|| [1u8, 2][index]).is_err();
    let thread =
        std::thread::spawn(|| catch_unwind(|| -> u8 { panic!("inside a decoder") }).is_err())
            .join();
    let uncaught_in_thread = std::thread::spawn(|| panic!("not caught")).join().is_err();
    set_hook(hook);
    assert!(caught, "an index panic on the test thread was not caught");
    assert_eq!(
        thread.ok(),
        Some(true),
        "a panic on another thread was not caught"
    );
    assert!(uncaught_in_thread, "a thread's panic did not reach join");
}
