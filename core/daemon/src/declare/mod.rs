//! Declared attachments: attachments written down once (in a container's
//! environment or labels, or in a file for `pipework apply`) and made to hold
//! by pipework, as often as it is asked, without changing what already holds.
//!
//! - [`container`] reads a container's declarations (dreamcat4's
//!   `pipework_cmd` convention and our `io.pipework.attach.<n>` labels);
//! - [`file`] reads the file of `pipework apply`;
//! - [`plan`] turns declarations into [`Intent`]s, one per guest interface;
//! - [`ensure`] makes one intent hold on a resolved guest;
//! - [`apply`] does it for a whole file.
//!
//! A declaration is the argument list of an ordinary attach, parsed by the
//! CLI's grammar (handed in as an [`AttachParser`], so that there is one
//! grammar). What makes a second run a no-op is the digest of an intent's
//! declarations, kept as a label on the attachment record: same digest, same
//! attachment. A MAC address not declared is derived from the guest's name
//! and the interface, so an attachment made again (after a container
//! restart) gets the MAC, and so the DHCP lease, it had.

pub mod apply;
pub mod container;
pub mod ensure;
pub mod file;

use std::collections::{BTreeMap, HashMap};

use pipework_model::{AttachRequest, GuestRef, HostRoute, MacAddr, MacSpec, MacvlanMode};

/// Parses one attach's arguments (the legacy grammar) into a request.
pub type AttachParser = fn(&[String]) -> std::result::Result<AttachRequest, String>;

/// Label keys pipework puts on the records of declared attachments.
pub mod labels {
    /// Who made the attachment: `reconciler` or `apply`.
    pub const OWNER: &str = "io.pipework.owner";
    /// The digest of the declarations the attachment was made from.
    pub const DIGEST: &str = "io.pipework.digest";
    /// Where they were declared (variables, labels, file lines).
    pub const SOURCE: &str = "io.pipework.source";
    /// The full ID of the container (reconciler).
    pub const CONTAINER: &str = "io.pipework.container";
    /// The file, as given to `pipework apply` and made absolute.
    pub const FILE: &str = "io.pipework.file";
}

/// One declared attachment, before parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// Where it was found: `env pipework_cmd_eth1`, `label io.pipework.attach.1`,
    /// `/etc/pipework.conf:3`.
    pub source: String,
    pub args: Vec<String>,
    /// dreamcat4's `pipework_host_route(s)`: add the shim.
    pub host_route: Option<HostRoute>,
}

/// What must hold for one guest interface.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    pub guest: GuestRef,
    pub ifname: String,
    /// The first makes the interface; the others add addresses to it.
    pub requests: Vec<AttachRequest>,
    pub sources: Vec<String>,
    pub digest: String,
}

/// The interface a request names (the default when it names none).
const DEFAULT_IFNAME: &str = "eth1";

/// Parses declarations and groups them by guest and interface, in the
/// order they were declared. `guest` replaces the guest the arguments name
/// (a container's declarations are always about that container); `mac_seed`
/// names the guest for derived MAC addresses. Returns the intents and one
/// message per declaration that could not be parsed.
pub fn plan(
    decls: &[Declared],
    parse: AttachParser,
    guest: Option<&GuestRef>,
    mac_seed: Option<&str>,
) -> (Vec<Intent>, Vec<String>) {
    let mut intents: Vec<Intent> = Vec::new();
    let mut errors = Vec::new();
    let mut texts: Vec<Vec<String>> = Vec::new();
    // Where each guest interface's intent is: a lookup per declaration, not
    // a scan of the intents so far (which made a file quadratic).
    let mut index: HashMap<(GuestRef, String), usize> = HashMap::new();
    for d in decls {
        let mut req = match parse(&d.args) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{}: {e}", d.source));
                continue;
            }
        };
        if let Some(g) = guest {
            req.guest = g.clone();
        }
        if req.options.host_route.is_none() {
            req.options.host_route = d.host_route.clone();
        }
        let ifname = req
            .guest_ifname
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_else(|| DEFAULT_IFNAME.to_string());
        if req.guest_ifname.is_none() {
            req.guest_ifname = Some(ifname.parse().expect("a valid default"));
        }
        let mut text = d.args.clone();
        if let Some(h) = &d.host_route {
            text.push(format!("host-route={h:?}"));
        }
        match index.get(&(req.guest.clone(), ifname.clone())).copied() {
            Some(n) => {
                intents[n].requests.push(req);
                intents[n].sources.push(d.source.clone());
                texts[n].extend(text);
            }
            None => {
                if req.mac == MacSpec::Random && req.options.macvlan_mode != MacvlanMode::Passthru {
                    let seed = mac_seed
                        .map(str::to_string)
                        .unwrap_or_else(|| req.guest.to_string());
                    req.mac =
                        MacSpec::Explicit(MacAddr::from_unique_string(&format!("{seed}/{ifname}")));
                }
                index.insert((req.guest.clone(), ifname.clone()), intents.len());
                intents.push(Intent {
                    guest: req.guest.clone(),
                    ifname,
                    requests: vec![req],
                    sources: vec![d.source.clone()],
                    digest: String::new(),
                });
                texts.push(text);
            }
        }
    }
    for (i, t) in intents.iter_mut().zip(texts) {
        i.digest = format!(
            "{:016x}",
            pipework_base::hostname::fnv1a(t.join("\u{1f}").as_bytes())
        );
    }
    (intents, errors)
}

/// The labels every record of an intent carries.
pub fn intent_labels(
    intent: &Intent,
    owner: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut l = owner.clone();
    l.insert(labels::DIGEST.into(), intent.digest.clone());
    l.insert(labels::SOURCE.into(), intent.sources.join(", "));
    l
}

/// Splits a declaration into arguments: whitespace-separated, a `#` that
/// starts a word starts a comment, and the program name may lead.
pub fn split_args(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split_whitespace() {
        if w.starts_with('#') {
            break;
        }
        out.push(w.to_string());
    }
    if out.first().is_some_and(|w| w == "pipework") {
        out.remove(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipework_model::{AddressMode, HostSelector};

    /// A stand-in for the CLI grammar: `<host> [-i IF] <guest> <addr>`.
    fn parse(a: &[String]) -> std::result::Result<AttachRequest, String> {
        let mut it = a.iter();
        let host: HostSelector = it
            .next()
            .ok_or("no host")?
            .parse()
            .map_err(|e| format!("{e}"))?;
        let mut next = it.next().ok_or("no guest")?;
        let mut ifname = None;
        if next == "-i" {
            ifname = Some(
                it.next()
                    .ok_or("no if")?
                    .parse()
                    .map_err(|e| format!("{e}"))?,
            );
            next = it.next().ok_or("no guest")?;
        }
        let guest: GuestRef = next.parse().map_err(|e| format!("{e}"))?;
        let addr =
            AddressMode::parse(it.next().ok_or("no address")?, None).map_err(|e| format!("{e}"))?;
        let mut r = AttachRequest::new(host, guest, addr);
        r.guest_ifname = ifname;
        Ok(r)
    }

    fn d(source: &str, args: &str) -> Declared {
        Declared {
            source: source.into(),
            args: split_args(args),
            host_route: None,
        }
    }

    #[test]
    fn grouped_per_interface_with_stable_macs_and_digests() {
        let decls = vec![
            d("a", "br1 web 10.0.0.2/24"),
            d("b", "br1 web 10.0.0.3/24"),
            d("c", "br2 -i eth2 web 10.1.0.2/24"),
            d("bad", "br1"),
        ];
        let g = GuestRef::Container("web".into());
        let (i, errs) = plan(&decls, parse, Some(&g), Some("web"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("bad: "), "{errs:?}");
        assert_eq!(i.len(), 2);
        assert_eq!(i[0].ifname, "eth1");
        assert_eq!(i[0].requests.len(), 2);
        assert_eq!(i[1].ifname, "eth2");
        assert_eq!(
            i[0].requests[0].mac,
            MacSpec::Explicit(MacAddr::from_unique_string("web/eth1"))
        );
        // Only the first request makes the link; the second must not insist on a MAC.
        assert_eq!(i[0].requests[1].mac, MacSpec::Random);
        let (again, _) = plan(&decls, parse, Some(&g), Some("web"));
        assert_eq!(again, i, "the same declarations make the same plan");
        let (other, _) = plan(&decls[..1], parse, Some(&g), Some("web"));
        assert_ne!(other[0].digest, i[0].digest);
    }

    /// Many guests: each declaration finds its intent by lookup (the
    /// timing is in `tests/benches/apply_parse.rs`).
    #[test]
    fn many_guests_group_in_declaration_order() {
        let decls: Vec<Declared> = (0..20_000)
            .map(|i| {
                let g = i % 10_000;
                d(
                    &format!("f:{i}"),
                    &format!("br1 g{g} 10.{}.{}.{}/8", g >> 8, g & 255, 2 + i / 10_000),
                )
            })
            .collect();
        let (intents, errs) = plan(&decls, parse, None, None);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(intents.len(), 10_000);
        for (g, i) in intents.iter().enumerate() {
            assert_eq!(i.guest, GuestRef::Auto(format!("g{g}")));
            assert_eq!(
                i.sources,
                vec![format!("f:{g}"), format!("f:{}", g + 10_000)]
            );
        }
    }

    #[test]
    fn splitting() {
        assert_eq!(
            split_args("pipework eth0  -i eth1 @CONTAINER_NAME@ dhcp # host NIC 1"),
            vec!["eth0", "-i", "eth1", "@CONTAINER_NAME@", "dhcp"]
        );
        assert!(split_args("  # nothing").is_empty());
    }
}
