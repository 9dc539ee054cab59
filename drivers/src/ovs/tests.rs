use super::*;
use pipework_model::{AddressMode, GuestRef, HostSelector};

fn req(tag: Option<&str>, trunk: Option<&str>, native: Option<u16>, tagged: bool) -> AttachRequest {
    let mut r = AttachRequest::new(
        HostSelector::Name("ovs0".parse().unwrap()),
        GuestRef::Auto("g".into()),
        AddressMode::None,
    );
    r.tag = tag.map(|t| t.parse().unwrap());
    r.options.ovs.trunk = trunk.map(|t| t.parse().unwrap());
    r.options.ovs.native_vlan = native.map(|n| pipework_model::VlanId::new(n).unwrap());
    r.options.ovs.native_tagged = tagged;
    r
}

#[test]
fn vlan_modes() {
    assert_eq!(
        port_vlan(&req(Some("10"), None, None, false)).unwrap(),
        PortVlan::Access(10)
    );
    assert_eq!(
        port_vlan(&req(None, None, None, false)).unwrap(),
        PortVlan::Unset
    );
    assert_eq!(
        port_vlan(&req(None, Some("10,20-21"), None, false)).unwrap(),
        PortVlan::Trunk(vec![10, 20, 21])
    );
    assert_eq!(
        port_vlan(&req(None, Some("20"), Some(10), true)).unwrap(),
        PortVlan::Native {
            native: 10,
            trunks: vec![20],
            tagged: true
        }
    );
    assert_eq!(
        port_vlan(&req(None, Some("all"), None, false)).unwrap(),
        PortVlan::Trunk(vec![])
    );
    for bad in [
        req(Some("10"), Some("20"), None, false),
        req(Some("10"), None, Some(20), false),
        req(None, Some("20"), None, true),
        req(Some("8001"), None, None, false),
    ] {
        assert!(port_vlan(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cookies_round_trip() {
    let c = new_cookie();
    assert_eq!(c >> 48, 0x7077);
    assert_eq!(c & GENERATION_BITS, 0);
    assert_eq!(parse_cookie(&cookie_text(c)), Some(c));
    assert_eq!(cookie_text(COOKIE_PREFIX | 1), "0x7077000000000001");
}
