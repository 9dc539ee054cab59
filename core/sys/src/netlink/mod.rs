//! rtnetlink, bound to one namespace.
//!
//! [`Netlink`] wraps an `rtnetlink` connection whose socket was opened inside a
//! given namespace. Every request goes through [`Netlink::request`], which gives
//! uniform errors with the kernel's extended-ack message. The object modules
//! (`link`, `addr`, `route`, `rule`) hold the requests we need.

mod addr;
mod bridge_vlan;
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
use std::os::fd::{AsFd, FromRawFd, IntoRawFd};
use std::sync::Arc;

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};

use crate::netns::Netns;

/// `NETLINK_CAP_ACK`: do not echo the whole request back in error messages.
const NETLINK_CAP_ACK: libc::c_int = 10;

/// An rtnetlink connection inside one namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    /// "host" or the guest's name, for error messages.
    label: Arc<str>,
}

impl Netlink {
    /// A connection in the calling thread's namespace. Needs a tokio runtime.
    pub fn connect_here(label: &str) -> io::Result<Netlink> {
        let sock = open_socket()?;
        Ok(Netlink::from_socket(sock, label))
    }

    /// A connection in `ns`: the calling thread enters it for the socket
    /// call ([`Netns::enter_briefly`]).
    pub async fn connect_in(ns: &Netns, label: &str) -> io::Result<Netlink> {
        let sock = ns.enter_briefly(open_socket)??;
        Ok(Netlink::from_socket(sock, label))
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
        Ok((Netlink::from_socket(sock, label), t))
    }

    fn from_socket(sock: Socket, label: &str) -> Netlink {
        // SAFETY: the fd comes from a Socket we own and give up here.
        let tokio_sock = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(tokio_sock);
        tokio::spawn(conn);
        Netlink {
            handle,
            label: label.into(),
        }
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
        let req = envelope(msg, flags);
        let mut handle = self.handle.clone();
        let mut stream = match handle.request(req) {
            Ok(s) => s,
            Err(e) => return Err(NlError::other(op(), &self.label, e.to_string())),
        };
        let mut out = Vec::new();
        while let Some(m) = stream.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(NlError::from_kernel(op(), &self.label, &e));
                }
                _ => {}
            }
        }
        Ok(out)
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
