//! `pipework route|rule|tc <guest> ...`: the original passed these to `ip` and
//! `tc` inside the guest. Routes and rules are parsed here with `ip route` /
//! `ip rule`'s grammar (its verbs, keywords, abbreviations and defaults) and
//! sent over netlink; `show`, `get` and `flush` read the kernel's routes and
//! print them as `ip` does. `tc` runs the real `tc` binary inside the
//! guest's namespace, since its grammar is a language.
//!
//! `parse` reads the route changes, `query` the show/flush/get commands,
//! `words` what both share, `show` selects and prints routes,
//! `rule` is the rule grammar and printer, `names` the words both share.

mod names;
mod parse;
mod query;
mod rule;
mod show;
mod words;

use std::net::IpAddr;

use crate::error::{Context, Error, Result};
use pipework_model::Family;
use pipework_sys::netlink::route_msg::{
    RouteMsg, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
};
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

/// `add`, `del`, ... as `ip route` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Add,
    Delete,
    /// Add or replace.
    Replace,
    /// Replace an existing one only.
    Change,
    Prepend,
    Append,
    /// Fails if it exists; creates nothing.
    Test,
}

impl Verb {
    fn flags(self) -> u16 {
        match self {
            Verb::Add => NLM_F_CREATE | NLM_F_EXCL,
            Verb::Change => NLM_F_REPLACE,
            Verb::Replace => NLM_F_CREATE | NLM_F_REPLACE,
            Verb::Prepend => NLM_F_CREATE,
            Verb::Append => NLM_F_CREATE | NLM_F_APPEND,
            Verb::Test => NLM_F_EXCL,
            Verb::Delete => 0,
        }
    }
}

/// A prefix selector of `show`/`flush` (iproute2's `inet_prefix`): the
/// family when known, the address (none for `default`), the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selector {
    pub family: Option<Family>,
    pub addr: Option<IpAddr>,
    pub len: u8,
}

/// What `show` and `flush` select (iproute2's route filter).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// The family dumped: `None` for both.
    pub family: Option<Family>,
    /// 0 for all tables.
    pub table: u32,
    pub protocol: Option<u8>,
    pub scope: Option<u8>,
    pub kind: Option<u8>,
    /// `root P`: routes inside P.
    pub root: Option<Selector>,
    /// `match P`: routes containing P.
    pub within: Option<Selector>,
    pub from_root: Option<Selector>,
    pub from_within: Option<Selector>,
    pub via: Option<Selector>,
    pub src: Option<Selector>,
    pub dev: Option<String>,
    pub iif: Option<String>,
    pub metric: Option<u32>,
    pub tos: Option<u8>,
    pub cloned: bool,
}

/// A parsed `route` command.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteCommand {
    /// add, del, replace, change, prepend, append, test.
    Modify {
        verb: Verb,
        route: RouteMsg,
        /// `dev NAME`, resolved to an index inside the guest at run time.
        dev: Option<String>,
        /// `dev` of each `nexthop`, in order.
        nexthop_devs: Vec<Option<String>>,
    },
    Show(RouteFilter),
    Flush(RouteFilter),
    Get {
        query: RouteMsg,
        iif: Option<String>,
        oif: Option<String>,
    },
}

pub use parse::parse_route;
pub use rule::{parse_rule, RuleCommand};

async fn index(nl: &Netlink, name: &str) -> Result<u32> {
    Ok(nl
        .link_by_name(name)
        .await?
        .ok_or_else(|| {
            Error::usage(format!(
                "no interface {name} in the guest (Cannot find device \"{name}\")"
            ))
        })?
        .index)
}

/// Runs a route command inside the guest; returns what it prints (the
/// lines of `show` and `get`, nothing for the others).
pub async fn run_route(nl: &Netlink, cmd: RouteCommand) -> Result<String> {
    match cmd {
        RouteCommand::Modify {
            verb,
            mut route,
            dev,
            nexthop_devs,
        } => {
            if let Some(d) = &dev {
                route.oif = Some(index(nl, d).await?);
            }
            for (nh, d) in route.multipath.iter_mut().zip(&nexthop_devs) {
                if let Some(d) = d {
                    nh.ifindex = index(nl, d).await?;
                }
            }
            let what = format!("{verb:?} route").to_lowercase();
            if verb == Verb::Delete {
                nl.del_route_msg(&route).await.step(&what)?;
            } else {
                nl.new_route_msg(&route, verb.flags()).await.step(&what)?;
            }
            Ok(String::new())
        }
        RouteCommand::Show(f) => show::show(nl, &f).await,
        RouteCommand::Flush(f) => show::flush(nl, &f).await.map(|()| String::new()),
        RouteCommand::Get {
            mut query,
            iif,
            oif,
        } => {
            if let Some(d) = &iif {
                query.iif = Some(index(nl, d).await?);
            }
            if let Some(d) = &oif {
                query.oif = Some(index(nl, d).await?);
            }
            show::get(nl, &query).await
        }
    }
}

/// Runs a rule command inside the guest; returns what it prints.
pub async fn run_rule(nl: &Netlink, cmd: RuleCommand) -> Result<String> {
    rule::run(nl, cmd).await
}

/// Runs `tc <args>` inside the guest's namespace and returns its exit status.
pub fn run_tc(ns: &Netns, args: &[String]) -> Result<i32> {
    let mut cmd = std::process::Command::new("tc");
    cmd.args(args);
    pipework_sys::process::enter_netns_on_exec(&mut cmd, ns);
    let st = cmd
        .status()
        .map_err(|e| Error::failed("cannot run tc (is iproute2 installed?)").with_source(e))?;
    Ok(st.code().unwrap_or(1))
}

#[cfg(test)]
mod tests;
