//! The attach options of the hardware drivers (SR-IOV VFs, IPoIB), kept apart
//! from the rest of the grammar.

use pipework_core::model::{parse_rate, parse_switch, HwOptions};

use crate::usage_error::UsageError;

/// Whether `flag` is one of ours (each takes a value).
pub fn takes(flag: &str) -> bool {
    matches!(
        flag,
        "--vf"
            | "--vf-vlan-qos"
            | "--spoofchk"
            | "--trust"
            | "--vf-link-state"
            | "--max-tx-rate"
            | "--min-tx-rate"
            | "--ipoib-mode"
    )
}

/// Records one flag and its value.
pub fn apply(flag: &str, value: &str, hw: &mut HwOptions) -> Result<(), UsageError> {
    let twice = || UsageError(format!("option {flag} given twice"));
    macro_rules! set_once {
        ($field:expr, $v:expr) => {{
            if $field.is_some() {
                return Err(twice());
            }
            $field = Some($v);
        }};
    }
    match flag {
        "--vf" => set_once!(hw.vf, value.parse()?),
        "--vf-vlan-qos" => {
            let q = value
                .parse::<u8>()
                .ok()
                .filter(|q| *q <= 7 && value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    UsageError(format!("bad --vf-vlan-qos '{value}': must be 0 to 7"))
                })?;
            set_once!(hw.vf_qos, q)
        }
        "--spoofchk" => set_once!(hw.spoofchk, parse_switch("--spoofchk", value)?),
        "--trust" => set_once!(hw.trust, parse_switch("--trust", value)?),
        "--vf-link-state" => set_once!(hw.link_state, value.parse()?),
        "--max-tx-rate" => set_once!(hw.max_tx_rate, parse_rate("--max-tx-rate", value)?),
        "--min-tx-rate" => set_once!(hw.min_tx_rate, parse_rate("--min-tx-rate", value)?),
        "--ipoib-mode" => set_once!(hw.ipoib_mode, value.parse()?),
        _ => return Err(UsageError(format!("unknown option '{flag}'"))),
    }
    Ok(())
}

/// Cross-checks once every flag is read.
pub fn finish(hw: &HwOptions) -> Result<(), UsageError> {
    hw.check().map_err(UsageError)
}

#[cfg(test)]
mod tests {
    use pipework_core::model::{AttachRequest, IpoibMode, VfLinkState, VfSelect};

    use crate::grammar::{parse, Command, UsageError};

    fn p(s: &str) -> Result<AttachRequest, UsageError> {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        match parse(&args)?.command {
            Command::Attach(r) => Ok(*r),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn vf_options() {
        let r = p("eth0 --vf 3 web1 10.0.0.2/24 02:00:00:00:00:01@10 --vf-vlan-qos 5 \
                   --spoofchk on --trust off --vf-link-state enable --max-tx-rate 100 --min-tx-rate 10")
        .unwrap();
        let hw = &r.options.hw;
        assert_eq!(hw.vf, Some(VfSelect::Index(3)));
        assert_eq!(hw.vf_qos, Some(5));
        assert_eq!(hw.spoofchk, Some(true));
        assert_eq!(hw.trust, Some(false));
        assert_eq!(hw.link_state, Some(VfLinkState::Enable));
        assert_eq!((hw.min_tx_rate, hw.max_tx_rate), (Some(10), Some(100)));
        assert_eq!(
            p("eth0 --vf auto web1 0/0").unwrap().options.hw.vf,
            Some(VfSelect::Auto)
        );
        assert_eq!(
            p("ib0 web1 10.0.0.2/24 @8001 --ipoib-mode connected")
                .unwrap()
                .options
                .hw
                .ipoib_mode,
            Some(IpoibMode::Connected)
        );
        assert!(p("dummy web1 10.0.0.2/24").is_ok());
    }

    #[test]
    fn malformed_values_are_named() {
        for (args, needle) in [
            ("eth0 --vf web1 0/0", "bad VF 'web1'"),
            ("eth0 --vf -1 web1 0/0", "bad VF '-1'"),
            ("eth0 --vf x web1 0/0", "bad VF 'x'"),
            ("eth0 --vf 1 --vf 2 web1 0/0", "given twice"),
            ("eth0 --vf 1 web1 0/0 --vf-vlan-qos 8", "0 to 7"),
            ("eth0 --vf 1 web1 0/0 --vf-vlan-qos -1", "0 to 7"),
            ("eth0 --vf 1 web1 0/0 --vf-vlan-qos x", "0 to 7"),
            ("eth0 --vf 1 web1 0/0 --spoofchk yes", "must be on or off"),
            ("eth0 --vf 1 web1 0/0 --trust 1", "must be on or off"),
            (
                "eth0 --vf 1 web1 0/0 --vf-link-state up",
                "auto, enable or disable",
            ),
            ("eth0 --vf 1 web1 0/0 --max-tx-rate fast", "Mbit/s"),
            ("eth0 --vf 1 web1 0/0 --min-tx-rate 1.5", "Mbit/s"),
            (
                "eth0 --vf 1 web1 0/0 --min-tx-rate 20 --max-tx-rate 10",
                "above",
            ),
            ("eth0 web1 0/0 --spoofchk on", "add --vf"),
            ("eth0 web1 0/0 --max-tx-rate 10", "add --vf"),
            ("ib0 web1 0/0 --ipoib-mode cm", "datagram or connected"),
            ("eth0 --vf 1 web1 0/0 --ipoib-mode connected", "not SR-IOV"),
            ("eth0 --vf", "needs a value"),
        ] {
            let e = p(args).expect_err(args);
            assert!(e.0.contains(needle), "{args:?}: {e}");
            assert!(!e.0.contains('\n'));
        }
    }
}
