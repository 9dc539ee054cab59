//! 802.1Q-tagged ARP on a packet socket, for proving trunk ports: this
//! kernel has no 8021q module, so a guest cannot make VLAN sub-interfaces,
//! but it can still write tagged frames and read the tag of the frames it
//! gets (the kernel strips it into `PACKET_AUXDATA`).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;

/// An ARP reply seen by [`arp_ask`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpReply {
    /// The VLAN the reply came in on (`None`: untagged).
    pub vlan: Option<u16>,
    pub sender_mac: [u8; 6],
}

#[repr(C)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

fn arp_request(vlan: Option<u16>, mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// From inside netns `ns`, on `ifname`, asks "who has `target`" as
/// `mac`/`ip` in `vlan` (untagged if `None`), and returns the first reply
/// for it within `timeout`.
pub fn arp_ask(
    ns: &str,
    ifname: &str,
    vlan: Option<u16>,
    mac: [u8; 6],
    ip: Ipv4Addr,
    target: Ipv4Addr,
    timeout: Duration,
) -> Option<ArpReply> {
    let ns = format!("/run/netns/{ns}");
    let ifname = ifname.to_string();
    // setns() only on a thread of our own, which then ends.
    std::thread::spawn(move || unsafe {
        let nsfd = std::fs::File::open(&ns).expect("netns");
        assert_eq!(libc::setns(nsfd.as_raw_fd(), libc::CLONE_NEWNET), 0);
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from(ETH_P_ALL.to_be()),
        );
        assert!(fd >= 0, "packet socket");
        let sock = OwnedFd::from_raw_fd(fd);
        let cname = std::ffi::CString::new(ifname).unwrap();
        let index = libc::if_nametoindex(cname.as_ptr());
        assert!(index > 0, "no such interface");
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        assert_eq!(
            libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32
            ),
            0
        );
        let one: i32 = 1;
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &one as *const _ as *const libc::c_void,
            4,
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let frame = arp_request(vlan, mac, ip, target);
        let started = Instant::now();
        let mut sent_at = None::<Instant>;
        while started.elapsed() < timeout {
            if sent_at.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                libc::send(fd, frame.as_ptr() as *const libc::c_void, frame.len(), 0);
                sent_at = Some(Instant::now());
            }
            let mut buf = [0u8; 2048];
            let mut ctl = [0u8; 256];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = ctl.len();
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
            if n <= 0 {
                continue;
            }
            let mut pkt = &buf[..n as usize];
            let mut tag = None;
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                    let aux = &*(libc::CMSG_DATA(c) as *const TpacketAuxdata);
                    if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                        tag = Some(aux.tp_vlan_tci & 0x0fff);
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            if pkt.len() >= 18 && pkt[12..14] == [0x81, 0x00] {
                tag = Some(u16::from_be_bytes([pkt[14], pkt[15]]) & 0x0fff);
                let mut v = pkt[..12].to_vec();
                v.extend_from_slice(&pkt[16..]);
                buf[..v.len()].copy_from_slice(&v);
                pkt = &buf[..v.len()];
            }
            // An ARP reply (op 2) from `target` to us.
            if pkt.len() >= 42
                && pkt[12..14] == [0x08, 0x06]
                && pkt[20..22] == [0, 2]
                && pkt[28..32] == target.octets()
                && pkt[38..42] == ip.octets()
            {
                let mut sender = [0u8; 6];
                sender.copy_from_slice(&pkt[22..28]);
                return Some(ArpReply {
                    vlan: tag,
                    sender_mac: sender,
                });
            }
        }
        None
    })
    .join()
    .expect("arp thread")
}
