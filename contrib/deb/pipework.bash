# bash completion for pipework. Static: the grammar is hand-parsed (no clap
# derive to generate it from); cli/tests/completions.rs checks that every
# option and command of `pipework --help` is here.
_pipework() {
    local cur prev words cword
    _init_completion || return

    local commands="route rule tc detach inspect inspect-all list gc check daemon apply demo dummy"
    local opts="--direct-phys -i -l -a --vf --vf-vlan-qos --spoofchk --trust
        --vf-link-state --max-tx-rate --min-tx-rate --ipoib-mode
        --macvlan-mode --no-announce --no-dad --timeout --dns --slaac
        --host-route --trunk --native-vlan --native-tagged --port-security
        --datapath-type --wait --link-only --address --json --repair --prune --idle-exit
        --reconcile --engine --key --state-dir --ovsdb -v -vv -h --help
        -V --version --all --format --mac-scheme"

    case $prev in
        --state-dir) _filedir -d; return ;;
        --mac-scheme) mapfile -t COMPREPLY < <(compgen -W "network-wrapper" -- "$cur"); return ;;
        --format) mapfile -t COMPREPLY < <(compgen -W "json network-wrapper" -- "$cur"); return ;;
        apply) _filedir; return ;;
        -i) _available_interfaces 2>/dev/null; return ;;
        -a) mapfile -t COMPREPLY < <(compgen -W "4 6" -- "$cur"); return ;;
        --macvlan-mode) mapfile -t COMPREPLY < <(compgen -W "bridge private vepa passthru" -- "$cur"); return ;;
        --spoofchk | --trust) mapfile -t COMPREPLY < <(compgen -W "on off" -- "$cur"); return ;;
        --vf-link-state) mapfile -t COMPREPLY < <(compgen -W "auto enable disable" -- "$cur"); return ;;
        --ipoib-mode) mapfile -t COMPREPLY < <(compgen -W "datagram connected" -- "$cur"); return ;;
        --datapath-type) mapfile -t COMPREPLY < <(compgen -W "system netdev" -- "$cur"); return ;;
        --host-route | --vf) mapfile -t COMPREPLY < <(compgen -W "auto" -- "$cur"); return ;;
        -l | --timeout | --vf-vlan-qos | --max-tx-rate | --min-tx-rate | --trunk | \
            --native-vlan | --idle-exit | --engine | --key | --ovsdb) return ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        return
    fi
    if [[ $cword -eq 1 ]]; then
        local ifs
        ifs=$(ls /sys/class/net 2>/dev/null)
        mapfile -t COMPREPLY < <(compgen -W "$commands $ifs" -- "$cur")
        return
    fi
    case ${words[1]} in
        route) [[ $cword -eq 3 ]] && mapfile -t COMPREPLY < <(compgen -W "add del replace change" -- "$cur") ;;
        rule) [[ $cword -eq 3 ]] && mapfile -t COMPREPLY < <(compgen -W "add del" -- "$cur") ;;
    esac
}
complete -F _pipework pipework
