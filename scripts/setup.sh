#!/usr/bin/env bash
# Installs what Oasis needs on a Debian machine that has only Swift and gcc.
# Idempotent: packages already present are not fetched again. Run as root.
set -euo pipefail

packages=(
    make pkg-config
    libpcap-dev libxen-dev            # the C shims link against the real libraries
    iproute2 iputils-ping iputils-arping netcat-openbsd  # namespaces and kernel peers
    tshark tcpdump                    # captures read by a dissector we did not write
    gnuplot-nox                       # bench/plot.sh: the pictures `make bench` draws
    ethtool                           # checksum offload off on veths that pcap reads
    python3 python3-venv              # kernel-side UDP sockets in the stack tests; os-ken's venv
    python3-scapy nftables            # raw TCP segments as the RFCs state them; the kernel's resets dropped
    iperf3                            # the iperf3 client and server our iperf3 roles meet
    liblwip-dev                       # lwIP's TCP beside ours on a TAP (bench/tcp.sh)
    openvswitch-switch openvswitch-common   # OpenFlow peer: ovs-vswitchd, ovs-ofctl
    openvswitch-testcontroller        # drives our switch; bench/openflow.sh compares our controller with it
    mininet                           # mn pingall through our controller (run inside unshare: MininetTests)
    nsd bind9-dnsutils knot-dnsutils dnsperf  # DNS peers: NSD, dig, kdig; load for the bench
    ldnsutils                         # ldns-keygen, ldns-signzone: the signed zones of the DNSSEC differential test
    dnsmasq-base                      # the DHCP server our DHCP client gets its leases from
    fio                               # bench/block.sh: the block device bench beside fio (libaio, direct=1)
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# os-ken (PyPI, not in Debian): a controller of others' that drives our switch in
# SwitchPeerTests and is measured beside ours in bench/openflow.sh. Its own venv, so
# the system's Python stays as Debian left it. OSKEN_PYTHON points the tests at another.
osken=/opt/oasis-peers/osken
if [ ! -x "$osken/bin/python" ] || ! "$osken/bin/python" -c "import os_ken" 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing os-ken into $osken"
        python3 -m venv "$osken" && "$osken/bin/pip" install -q 'os-ken<3' ||
            echo "setup: os-ken did not install (PyPI unreachable?): the tests that need it will say so" >&2
    fi
fi

command -v swift >/dev/null || { echo "setup: swift not on PATH (expected /opt/swift/usr/bin)" >&2; exit 1; }
echo "setup: ok ($(swift --version 2>&1 | head -n1))"
