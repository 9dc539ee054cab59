//! rtnetlink, bound to one namespace.
//!
//! [`Netlink`] wraps a netlink socket opened inside a given namespace
//! (`conn`). Every request goes through [`Netlink::request`], which gives
//! uniform errors with the kernel's extended-ack message. The object modules
//! (`link`, `addr`, `route`, `rule`) hold the requests we need, built with
//! rtnetlink's message builders and netlink-packet-route.

mod addr;
mod bridge_vlan;
mod conn;
mod error;
mod link;
#[cfg(test)]
mod link_bytes;
mod route;
pub mod route_msg;
mod rule;
mod vf;

pub use addr::Address;
pub use error::NlError;
pub use link::{Link, LinkChange, NewLink};
pub use route::{RouteSpec, RouteTable, RT_TABLE_MAIN};
pub use rule::{RuleEntry, RuleSpec};
pub use vf::{VfConfig, VfSetting};

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use netlink_packet_core::{NetlinkMessage, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use crate::netns::Netns;

/// `NETLINK_CAP_ACK`: do not echo the whole request back in error messages.
const NETLINK_CAP_ACK: libc::c_int = 10;

/// An rtnetlink connection inside one namespace. Clones share the socket;
/// their requests take turns on it.
#[derive(Clone)]
pub struct Netlink {
    conn: Arc<conn::Conn>,
    /// "host" or the guest's name, for error messages.
    label: Arc<str>,
}

impl Netlink {
    /// A connection in the calling thread's namespace. Needs a tokio runtime.
    pub fn connect_here(label: &str) -> io::Result<Netlink> {
        let sock = open_socket()?;
        Netlink::from_socket(sock, label)
    }

    /// A connection in `ns`: the calling thread enters it for the socket
    /// call ([`Netns::enter_briefly`]).
    pub async fn connect_in(ns: &Netns, label: &str) -> io::Result<Netlink> {
        let sock = ns.enter_briefly(open_socket)??;
        Netlink::from_socket(sock, label)
    }

    /// Like [`Netlink::connect_in`], also running `extra` inside the
    /// namespace (to open other sockets there in the same trip; it must not
    /// block). `home` is the calling thread's namespace, which the caller
    /// holds ([`Netns::enter_briefly_from`]).
    pub async fn connect_in_with<T, F>(
        ns: &Netns,
        home: &Netns,
        label: &str,
        extra: F,
    ) -> io::Result<(Netlink, T)>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (sock, t) =
            ns.enter_briefly_from(home.as_fd(), move || open_socket().map(|s| (s, extra())))??;
        Ok((Netlink::from_socket(sock, label)?, t))
    }

    fn from_socket(sock: Socket, label: &str) -> io::Result<Netlink> {
        Ok(Netlink {
            conn: Arc::new(conn::Conn::new(sock)?),
            label: label.into(),
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sends one request and collects the replies. `flags` are added to
    /// `NLM_F_REQUEST | NLM_F_ACK`.
    pub async fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        match self.conn.request(envelope(msg, flags)).await {
            Ok(conn::Replies::Done(out)) => Ok(out),
            Ok(conn::Replies::Error(e)) => Err(NlError::from_kernel(op(), &self.label, &e)),
            Err(e) => Err(NlError::io(op(), &self.label, e)),
        }
    }
}

/// A request with its netlink header: `flags` plus `NLM_F_REQUEST`, and
/// `NLM_F_ACK` unless it is a dump.
fn envelope(msg: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | flags;
    if flags & NLM_F_DUMP != NLM_F_DUMP {
        req.header.flags |= NLM_F_ACK;
    }
    req.finalize();
    req
}

/// The bytes [`Netlink::request`] would send for `msg`, with sequence number
/// and port id 0 (the socket fills those in).
pub fn wire_bytes(msg: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let req = envelope(msg, flags);
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    buf
}

fn open_socket() -> io::Result<Socket> {
    let sock = Socket::new(NETLINK_ROUTE)?;
    sock.set_ext_ack(true)?;
    // Strict checking makes the kernel honour dump filters (e.g. by master).
    sock.set_netlink_get_strict_chk(true)?;
    // Acks without the request echoed back: smaller replies. Kernels before
    // 4.3 lack the option; acks then just carry the request, so a failure
    // here costs bytes, not correctness, and is not an error.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option on our own socket; the
    // pointer and length describe `one`, which outlives the call.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_NETLINK,
            NETLINK_CAP_ACK,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!("NETLINK_CAP_ACK: {}", io::Error::last_os_error());
    }
    Ok(sock)
}
