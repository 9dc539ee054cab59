//! The partition key table of an HCA port through libibverbs, for systems
//! whose sysfs does not show it. Built only with the `rdma` feature (it links
//! libibverbs); without it there is no second source and sysfs decides.

/// The non-empty entries of the pkey table of `device` port `port`, or `None`
/// when the table cannot be read.
#[cfg(not(feature = "rdma"))]
pub fn pkey_table(_device: &str, _port: u32) -> Option<Vec<u16>> {
    None
}

#[cfg(feature = "rdma")]
pub fn pkey_table(device: &str, port: u32) -> Option<Vec<u16>> {
    use std::ffi::CStr;

    use rdma_sys::{
        ___ibv_query_port, ibv_close_device, ibv_free_device_list, ibv_get_device_list,
        ibv_get_device_name, ibv_open_device, ibv_port_attr, ibv_query_pkey,
    };

    let port = u8::try_from(port).ok()?;
    // SAFETY: the libibverbs calls below follow its documented protocol: the
    // device list is freed after the device is opened, the context is closed
    // before returning, and every out-pointer points at a live local.
    unsafe {
        let mut n = 0;
        let list = ibv_get_device_list(&mut n);
        if list.is_null() {
            return None;
        }
        let mut ctx = std::ptr::null_mut();
        for i in 0..usize::try_from(n).unwrap_or(0) {
            let dev = *list.add(i);
            let name = ibv_get_device_name(dev);
            if !name.is_null() && CStr::from_ptr(name).to_str() == Ok(device) {
                ctx = ibv_open_device(dev);
                break;
            }
        }
        ibv_free_device_list(list);
        if ctx.is_null() {
            return None;
        }
        let mut attr: ibv_port_attr = std::mem::zeroed();
        let mut out = None;
        if ___ibv_query_port(ctx, port, &mut attr) == 0 {
            let mut keys = Vec::new();
            for idx in 0..attr.pkey_tbl_len {
                let mut be: u16 = 0;
                if ibv_query_pkey(ctx, port, i32::from(idx), &mut be) == 0 {
                    let k = u16::from_be(be);
                    if k & 0x7fff != 0 {
                        keys.push(k);
                    }
                }
            }
            out = Some(keys);
        }
        ibv_close_device(ctx);
        out
    }
}
