# shellcheck shell=bash disable=SC2034
# Sourced by vagrant/build-box, vagrant/scenario and vagrant/ci-smoke: the
# packages they need, libvirt started by hand (no systemd as PID 1 on the CI
# machines), and the clean-up of everything libvirt and Vagrant leave behind.
#
# Everything cached lives under $PIPEWORK_VAGRANT_CACHE
# (default /var/cache/pipework-vagrant): the box tree, Vagrant's home (the
# added box), the box's kernel and initrd (in /var/lib/libvirt/boot, where the
# qemu user of libvirt can read them).

CACHE="${PIPEWORK_VAGRANT_CACHE:-/var/cache/pipework-vagrant}"
VAGRANT_HOME_GIVEN="${VAGRANT_HOME:-}"
export VAGRANT_HOME="${VAGRANT_HOME:-$CACHE/vagrant.d}"
export VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
export LIBVIRT_DEFAULT_URI=qemu:///system
BOX_NAME="${PIPEWORK_BOX:-pipework/bookworm64}"
BOOT_DIR=/var/lib/libvirt/boot

say() { echo "${SCRIPT_NAME:-vagrant}: $*" >&2; }
die() { say "$*"; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# need_packages PKG...: installs the missing ones (apt-get update first).
# QEMU comes from bookworm-backports: bookworm's 7.2 has no igb model. As in
# tests/vm/run, when the apt sources lack bookworm-backports, a source of our
# own is added for that install only and removed right after (QEMU then gets
# no backports updates), or on exit if the install fails.
BACKPORTS_LIST=/etc/apt/sources.list.d/pipework-vagrant-bookworm-backports.list
need_packages() {
    local missing="" p status=0
    export DEBIAN_FRONTEND=noninteractive
    for p in "$@"; do installed "$p" || missing="$missing $p"; done
    if ! qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; then
        if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            say "adding bookworm-backports to the apt sources while QEMU installs"
            echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$BACKPORTS_LIST"
        fi
        apt-get update -q &&
            apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils ||
            status=1
        backports_remove
        [ "$status" = 0 ] || return 1
    fi
    [ -n "$missing" ] || return 0
    say "installing$missing"
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
}

# backports_remove: the source need_packages added, if it did (the exit
# traps of the scripts call it too), and apt's lists again without it.
backports_remove() {
    [ -f "$BACKPORTS_LIST" ] || return 0
    rm -f "$BACKPORTS_LIST"
    say "removed bookworm-backports from the apt sources again"
    apt-get update -q >/dev/null 2>&1 || true
}

VAGRANT_PACKAGES="vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base qemu-utils iptables"

# start_libvirt: starts virtlogd and libvirtd unless they run (no systemd
# here). /dev/kvm exists but KVM hangs under this machine's hypervisor;
# libvirt probes it and, when its qemu user cannot open it, probes again on
# every call (15-20 s each): give the device the group udev would give it.
# What was started, and /dev/kvm's old mode, are put back by stop_libvirt.
STARTED_LIBVIRTD="" STARTED_VIRTLOGD="" KVM_WAS="" NFT_BEFORE=""
start_libvirt() {
    if command -v nft >/dev/null && [ -z "$NFT_BEFORE" ]; then
        NFT_BEFORE="$(nft list tables 2>/dev/null | sort)"
        [ -n "$NFT_BEFORE" ] || NFT_BEFORE=none
    fi
    if [ -e /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ] && getent group kvm >/dev/null; then
        KVM_WAS="$(stat -c '%U:%G %a' /dev/kvm)"
        chgrp kvm /dev/kvm && chmod 660 /dev/kvm
    fi
    if ! alive virtlogd; then
        virtlogd -d && STARTED_VIRTLOGD=1
    fi
    if ! alive libvirtd; then
        libvirtd -d && STARTED_LIBVIRTD=1
    fi

    # libvirtd probes QEMU's capabilities before it answers: under load here
    # that took more than 30 s once.
    for _ in $(seq 1 240); do
        virsh -q version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "libvirtd does not answer after 2 minutes"
}

# alive NAME: a process NAME runs (a zombie does not count: PID 1 here is
# no init and reaps the daemons stopped by an earlier run late).
alive() {
    # shellcheck disable=SC2009  # pgrep counts zombies too
    ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'
}

# stop_daemon PIDFILE: SIGTERM to the daemon, SIGKILL after 30 s (libvirtd
# ignores SIGTERM while it is still starting).
stop_daemon() {
    local pid
    [ -f "$1" ] || return 0
    pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 60); do
        ps -p "$pid" -o stat= 2>/dev/null | grep -qv '^Z' || return 0
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_libvirt() {
    if [ -n "$STARTED_LIBVIRTD" ]; then
        stop_daemon /run/libvirtd.pid
        STARTED_LIBVIRTD=""
    fi
    if [ -n "$STARTED_VIRTLOGD" ]; then
        stop_daemon /run/virtlogd.pid
        STARTED_VIRTLOGD=""
    fi
    if [ -n "$KVM_WAS" ]; then
        chown "${KVM_WAS% *}" /dev/kvm && chmod "${KVM_WAS#* }" /dev/kvm
        KVM_WAS=""
    fi
}

# libvirt_leftovers_clean PREFIX: what `vagrant destroy` may leave when a run
# failed half-way: domains and volumes named PREFIX*, the networks the
# Vagrantfile defines, and, once libvirt runs no network at all, the firewall
# chains it added (LIBVIRT_* in iptables' nft backend).
# With a second argument (keep-firewall), the chains stay: libvirtd is to
# make networks again, and it does not add back chains removed under it.
libvirt_leftovers_clean() {
    local prefix="$1" keep="${2:-}" d v n
    for d in $(virsh list --all --name 2>/dev/null | grep "^$prefix" || true); do
        virsh destroy "$d" >/dev/null 2>&1 || true
        virsh undefine "$d" --nvram >/dev/null 2>&1 || virsh undefine "$d" >/dev/null 2>&1 || true
    done
    for v in $(virsh vol-list default 2>/dev/null | awk -v p="$prefix" 'index($1, p) == 1 {print $1}'); do
        virsh vol-delete --pool default "$v" >/dev/null 2>&1 || true
    done
    for n in pipework-mgmt pipework-trunk pipework-sriov; do
        if virsh net-info "$n" >/dev/null 2>&1; then
            virsh net-destroy "$n" >/dev/null 2>&1 || true
            virsh net-undefine "$n" >/dev/null 2>&1 || true
        fi
    done
    if [ -z "$keep" ] && [ -z "$(virsh net-list --name 2>/dev/null | sed '/^$/d')" ]; then
        firewall_clean
    fi
}

# libvirt 9 adds LIBVIRT_{INP,OUT,FWO,FWI,FWX,PRT} chains, jumped to from the
# built-in ones, and keeps them after its last network is gone; iptables-nft
# keeps the nft tables it made for them.
firewall_clean() {
    local cmd t c
    for cmd in iptables ip6tables; do
        command -v "$cmd" >/dev/null || continue
        for t in filter nat mangle; do
            for c in $("$cmd" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^LIBVIRT_/ {print $2}'); do
                "$cmd" -t "$t" -S 2>/dev/null |
                    awk -v c="$c" '$1 == "-A" && $0 ~ ("-j " c "$") {sub(/^-A/, "-D"); print}' |
                    while read -r rule; do
                        # shellcheck disable=SC2086
                        "$cmd" -t "$t" $rule 2>/dev/null || true
                    done
                "$cmd" -t "$t" -F "$c" 2>/dev/null || true
                "$cmd" -t "$t" -X "$c" 2>/dev/null || true
            done
        done
    done
    # The nft tables that were not there before start_libvirt and hold no
    # rule now.
    if command -v nft >/dev/null && [ -n "$NFT_BEFORE" ]; then
        nft list tables 2>/dev/null | sort | while read -r _ fam name; do
            grep -qx "table $fam $name" <<<"$NFT_BEFORE" && continue
            nft -a list table "$fam" "$name" 2>/dev/null |
                grep '# handle' | grep -qv -e '^table' -e 'chain ' && continue
            nft delete table "$fam" "$name" 2>/dev/null || true
        done
    fi
}

# The box's build id: a digest of the recipe in build-box (the lines between
# its "recipe" markers), so that a changed recipe rebuilds the box and an
# unchanged one is reused.
box_build_id() {
    sed -n '/^# --- recipe/,/^# --- end of recipe/p' "$(dirname "${BASH_SOURCE[0]}")/build-box" |
        md5sum | cut -c1-12
}
