//! `pipework --help`.

pub const HELP: &str = "\
pipework: plug Linux containers into real networks

ATTACH (the original pipework grammar; -i, -l, -a in any order)
  pipework [--direct-phys] <hostif|mac:MAC> [-i IF] [-l NAME] [-a 4|6]
           <guest> <ip>/<len>[@<gateway>][,<ip>/<len>[@<gateway>]...] [<mac>|U:<string>][@<vlan>]
  pipework <hostif> ... <guest> 0/0 ...          interface without an address
  pipework <hostif> ... <guest> dhcp|dhcp6|dhcp,dhcp6 ... native DHCP client; returns once
                                                 the lease is bound and prints it
  pipework <hostif> ... <guest> udhcpc[-f][:opts] | dhclient[-f][:opts] | dhcpcd[:opts]
                                                 the host's client, as the original ran it
  pipework dummy <guest> <ip>/<len>[@<gateway>]  a dummy interface in the guest
  pipework <pf> --vf N|auto <guest> <ip> [<mac>][@<vlan>] [VF OPTIONS]

  <hostif>   existing Linux bridge -> veth pair, host end a bridge port
             missing br* name      -> that bridge is created first (and deleted
                                      by the detach that leaves it empty)
             existing bridge + @VID -> the bridge filters VLANs; the port's PVID is
                                      VID, untagged
             physical interface    -> macvlan child (--macvlan-mode); with @VID on
                                      <if>.<VID>, created if missing and deleted by
                                      the detach of its last user (if pipework made it)
             --direct-phys <if>    -> the interface itself moves into the guest (its
                                      name kept in its alias) and back on detach; with
                                      @VID its 802.1Q sub-interface
             SR-IOV PF + --vf      -> a VF set up through the PF, its netdev moved in;
                                      detach restores its name and VF settings
             InfiniBand interface  -> IPoIB child (default name ib0); @PKEY is a hex
                                      partition key (@8001 = @0001: full member),
                                      checked against the port's pkey table
             missing dummy* name   -> a dummy interface in the guest
             mac:<addr>            -> the interface with that MAC (case-insensitive;
                                      ambiguous matches are refused)
             Open vSwitch bridge   -> veth pair, host end an OVS port (OVSDB, one
                                      transaction); @<vlan> makes it an access port
             missing ovs* name     -> that OVS bridge is created in the same
                                      transaction (deleted by the detach that
                                      leaves it empty)
  <guest>    a PID, a netns path (/proc/<pid>/ns/net, /run/netns/X), a named netns,
             a Docker/Podman container name or ID (Docker Engine API; DOCKER_HOST),
             an LXC container name. Explicit forms: pid:N netns:NAME
             docker:NAME podman:NAME container:NAME lxc:NAME
  <ip>       static IPv4 or IPv6 with its prefix length; @<gateway> replaces the
             guest's default route atomically (an on-link route is added when the
             gateway is outside the subnet). Comma-separate several (dual stack).
  <mac>      explicit unicast MAC; U:<string> derives one like the original
             (MD5 of the string); default: random locally administered
  --mac-scheme network-wrapper   no <mac>: network-wrapper's XX:IP:IP:IP:YY:ZZ,
             the last three octets of the host interface's IPv4 address (else
             of the default route's source), XX and YY:ZZ random
  -i IF      interface name in the guest (default eth1)
  -l NAME    host-side veth name (default v<IF>pl<PID>, or pw<hash>; max 15 chars)
  -a 4|6     address family the address must have (-a 6 ... dhcp means DHCPv6)
  dhcp       pipework's own client in the guest's namespace: hostname = guest
             name, a stable client id (guest + interface, or the U: MAC);
             applies address, prefix, router, MTU, classless static routes.
             The lease is then kept by the pipework daemon (started on demand):
             renewed, rebound, released on detach or when the guest dies.
             dhcp6: DHCPv6 IA_NA, same keeping. dhcp:-f is accepted (always kept).
  udhcpc, dhclient, dhcpcd
             run that host binary in the guest's namespace with a private mount
             namespace (it cannot write the host's /etc/resolv.conf); -f (and
             dhcpcd always) keeps it running to renew; :opts are passed to it

  Attaching again with the same -i and host interface adds the new address to
  the existing interface. A failed attach undoes every step it made.

ATTACH OPTIONS
  --macvlan-mode bridge|private|vepa|passthru   macvlan mode (default bridge)
  --no-announce     do not send gratuitous ARP / unsolicited neighbour advertisement
  --no-dad          add IPv6 addresses without duplicate address detection
  --timeout SECS    wait at most this long for a container to be running and for
                    a DHCP lease or SLAAC address (default 30)
  --dns             write the lease's name servers and search domains into the
                    guest's resolv.conf (a container's own, or /etc/netns/<name>/
                    for a named netns); never the host's
  --slaac           accept router advertisements on the interface and wait for
                    an autoconfigured IPv6 address
  --host-route auto|<ip>/<len>
                    macvlan only: let the host reach this guest through a shared
                    host-side macvlan (pwh-<parent>) with that address (auto: the
                    last usable one of the guest's subnet) and a host route

OPEN VSWITCH OPTIONS (only with an OVS bridge)
  @<vlan>               access port in that VLAN (the original grammar)
  --trunk LIST          trunk port carrying LIST: 10,20-30 (or all)
  --native-vlan VID     untagged frames of the guest belong to VID (with --trunk:
                        the other VLANs stay tagged)
  --native-tagged       with --native-vlan: VID leaves the port tagged too
  --port-security       OpenFlow flows let only the guest's own MAC and addresses
                        (ARP and IPv6 ND included) in; spoofed frames are dropped
  --datapath-type TYPE  datapath of a bridge pipework creates (system, netdev)

VF OPTIONS (with --vf; set through the PF, restored by detach)
  --vf N|auto       VF index, or the first VF whose netdev is free on the host
  --vf-vlan-qos 0-7 802.1p priority of the VF's VLAN (@VID)
  --spoofchk on|off --trust on|off
  --vf-link-state auto|enable|disable
  --max-tx-rate MBPS --min-tx-rate MBPS   (0: no limit)
  --ipoib-mode datagram|connected   IPoIB mode (InfiniBand parents only)

OTHER COMMANDS
  pipework route <guest> <ip route arguments>   add|del|change|replace|append|
                 prepend|test <prefix>|default [via GW] [dev IF] [metric N] [table N]
                 [src IP] [scope S] [proto P] [onlink] [mtu N] [nexthop via GW dev IF
                 weight N ...], or show|list|flush [selectors], or get <address>;
                 nothing after the guest lists its routes, as ip route does
  pipework rule  <guest> <ip rule arguments>    add|del|show [not] [from P] [to P]
                 [table N] [priority N] [fwmark N[/M]] [iif IF] [oif IF] [TYPE]
  pipework tc    <guest> <tc arguments>      runs the tc binary inside the guest
  pipework --wait [-i IF] [--timeout SECS] [--link-only | --address]
                 run inside a guest: wait until IF is up, has carrier and
                 pipework's attach of it is done (its addresses and lease there,
                 IPv6 DAD finished; with 0/0 as soon as the link is up);
                 --link-only: up and carrier alone; --address: also an address
                 that is not link-local, whoever adds it; exit 1 on timeout
  pipework detach <guest> [-i IF]   remove what attach created, restore the
                                    previous default route
  pipework inspect <guest>|--all    the guest's (or every guest's) attachments as
                                    JSON: the records next to what is true now
                                    (addresses and default routes from the kernel,
                                    the DHCP lease as the daemon holds it, the
                                    DHCP client's PID); a gone guest is printed
                                    from its records, marked gone
  pipework inspect-all              the same as inspect --all (network-wrapper's name)
      --format network-wrapper      network-wrapper's JSON (Container,
                                    NetworkSettings.HWAddr, Bridge, IPAddress,
                                    IPPrefixLen, Gateway, DNS, DHCP_PID), one
                                    object per interface
  pipework list [--json]            every attachment pipework remembers, and each
                                    DHCP lease with its state and expiry
  pipework gc                       clean up after guests that are gone (and end
                                    compatible-mode DHCP clients whose guest is
                                    gone, and remove OVS ports pipework owns
                                    whose interface is gone)
  pipework check [<guest>] [--repair] [--json]
                                    compare every attachment with the host (link,
                                    MAC, addresses, routes, bridge port, OVS port,
                                    tag, port-security flows); one line per
                                    difference, exit 1 if any; --repair puts back
                                    what it can and exits 1 only if some remains
  pipework daemon [--idle-exit SECS] keep DHCP leases (one per host; control socket
                                    <state-dir>/daemon.sock, root only)
  pipework daemon --reconcile [--engine URL] [--key KEY]
                                    also follow the container engine (Docker API,
                                    DOCKER_HOST) and keep the attachments containers
                                    declare: pipework_cmd* variables (dreamcat4's
                                    convention, with its @MACROS@, pipework_key and
                                    pipework_host_route*) and io.pipework.attach.<n>
                                    labels; detached when the container stops
  pipework apply FILE [--prune]     make the attachments FILE declares (one attach per
                                    line, # comments) hold; idempotent; --prune detaches
                                    what the file no longer declares
  pipework demo                     two throwaway namespaces on a new bridge,
                                    a ping, their JSON, then everything removed

GLOBAL OPTIONS
  --state-dir DIR   where attachments are recorded (default /run/pipework,
                    or PIPEWORK_STATE_DIR)
  --ovsdb ADDR      OVSDB server: unix:PATH or tcp:HOST:PORT (default
                    unix:/var/run/openvswitch/db.sock, or PIPEWORK_OVSDB);
                    OpenFlow sockets are in PIPEWORK_OVS_RUNDIR (or OVS_RUNDIR)
  -v, -vv           more detail on standard error
  --json            machine-readable output (attach, list)
  -h, --help        this text;  -V, --version

EXIT CODES
  0 success   1 the operation failed (and was undone)   2 bad input, nothing changed
";
