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

/// Records written before the steps were typed (copied from records): the
/// `undo` tag is read, `op` is written.
#[test]
fn old_records_still_read() {
    let read = |record: &str| {
        let Step::Driver { data, .. } = serde_json::from_str(record).unwrap() else {
            panic!("not a driver step")
        };
        read_step(&data).unwrap()
    };
    let port = read(
        r#"{"op":"driver","driver":"ovs","data":{"undo":"port","ovsdb":"unix:/run/openvswitch/db.sock","bridge":"ovsbr0","port":"veth1pl4242","cookie":"0x7077a1b2c3d4e500"}}"#,
    );
    assert_eq!(
        port,
        OvsStep::Port {
            ovsdb: "unix:/run/openvswitch/db.sock".into(),
            bridge: "ovsbr0".into(),
            port: "veth1pl4242".into(),
            cookie: "0x7077a1b2c3d4e500".into(),
        }
    );
    let flows = read(
        r#"{"op":"driver","driver":"ovs","data":{"undo":"flows","rundir":"/run/openvswitch","bridge":"ovsbr0","cookie":"0x7077a1b2c3d4e501"}}"#,
    );
    assert!(matches!(&flows, OvsStep::Flows { cookie, .. } if cookie == "0x7077a1b2c3d4e501"));
    let now = serde_json::to_string(&Step::driver(DriverKind::Ovs, &flows).unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&now).unwrap();
    assert_eq!(v["data"]["op"], "flows", "{now}");
    assert!(v["data"].get("undo").is_none(), "{now}");
    assert_eq!(read(&now), flows);
    let bad = r#"{"op":"driver","driver":"ovs","data":{"undo":"ports"}}"#;
    let Step::Driver { data, .. } = serde_json::from_str(bad).unwrap() else {
        panic!("not a driver step")
    };
    let e = read_step(&data).unwrap_err().to_string();
    assert!(e.contains("unreadable ovs journal step"), "{e}");
}
