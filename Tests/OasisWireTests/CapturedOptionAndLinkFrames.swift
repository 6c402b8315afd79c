// Frames with IPv4 options, VLAN tags, 802.3 framing and fragments, captured with
// tcpdump on a veth between two Linux 6.18 namespaces by
// scripts/capture-wire-frames.sh (192.0.2.1 at 02:00:00:00:00:01 sending to 192.0.2.2
// at 02:00:00:00:00:02, checksum offload off). Where Linux cannot make a frame here
// (this kernel has no 802.1Q devices), scapy crafted it and the script sent it on the
// veth; the comment says so. tshark calls every checksum here good but one (see
// looseSourceRouteFrame).

import OasisTestSupport

/// ip-options.pcap #1, `ping -c1 -R 192.0.2.2`: IHL 15, a NOP, then record route (type 7,
/// length 39) with pointer 8: Linux recorded its own 192.0.2.1 in the first of nine slots.
/// An echo request, id 0x24c2 (the run's), seq 1.
let recordRouteRequestFrame = bytes(
    hex: """
        02000000000202000000000108004f00007c3e33400040018439c0000201c000020201072708c0000201000000000000
        0000000000000000000000000000000000000000000000000000080092bd24c20001f8a0166b0000000065a00d000000
        0000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637
        """)

/// ip-options.pcap #2, the kernel's echo reply to it: record route, pointer 16 (192.0.2.1,
/// 192.0.2.2, 192.0.2.2 recorded), then an end of options list.
let recordRouteReplyFrame = bytes(
    hex: """
        02000000000102000000000208004f00007c9c0100004001320fc0000202c0000201072710c0000201c0000202c00002
        020000000000000000000000000000000000000000000000000000009abd24c20001f8a0166b0000000065a00d000000
        0000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637
        """)

/// ip-options.pcap #3, `ping -c1 -T tsonly 192.0.2.2`: an internet timestamp option (type
/// 68, length 40, pointer 9, flag 0: timestamps only), one stamp recorded.
let timestampFrame = bytes(
    hex: """
        02000000000202000000000108004f00007c3e34400040012a48c0000201c0000202442809000297f441000000000000
        00000000000000000000000000000000000000000000000000000800e8a924c30001f8a0166b000000000fb30d000000
        0000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637
        """)

/// ip-options.pcap #5: the IGMPv3 membership report Linux sends on joining 239.1.2.3:
/// to 224.0.0.22, TTL 1, TOS 0xc0, IHL 6 with a router alert (type 148, length 4, value 0).
let routerAlertFrame = bytes(
    hex: """
        01005e000016020000000001080046c0002800004000010241f8c0000201e0000016940400002200e8f9000000010400
        0000ef010203
        """)

/// ip-options.pcap #8: a UDP datagram sent with IP_OPTIONS holding a loose source route
/// through 192.0.2.2 to 192.0.2.9: Linux sends it to the first hop and writes NOP, then
/// LSRR (type 131, length 11, pointer 4) listing 192.0.2.9 twice (the rest of the route,
/// then the final destination). Linux summed its UDP checksum over 192.0.2.2, the address
/// in the header; tshark sums over the final destination and calls it bad.
let looseSourceRouteFrame = bytes(
    hex: """
        02000000000202000000000108004800002cc716400040115c0cc0000201c000020201830b04c0000209c0000209a5d1
        0007000cf7136c737272
        """)

/// link.pcap #1 (scapy): an echo request (id 0x4242, seq 1, "qinq") from 198.51.100.1 to
/// .2 under an 802.1ad S-tag (PCP 3, VID 100) and an 802.1Q C-tag (PCP 5, VID 200).
let qinqEchoFrame = bytes(
    hex: """
        02000000000202000000000188a860648100a0c8080045000020000740004001e66bc6336401c63364020800d5e14242
        000171696e71
        """)

/// link.pcap #2 (scapy): an ARP request for 198.51.100.2 under the same two tags (PCP 0).
let qinqArpFrame = bytes(
    hex: """
        ffffffffffff02000000000188a80064810000c808060001080006040001020000000001c6336401000000000000c633
        6402
        """)

/// link.pcap #3 (scapy): an IEEE 802.3 frame (length 40) with LLC AA-AA-03 and SNAP
/// OUI 00-00-00 type 0x0800: a UDP datagram, 192.0.2.1:1234 to 192.0.2.2:7, "snap".
let snapUDPFrame = bytes(
    hex: """
        0200000000020200000000010028aaaa03000000080045000020000100004011f6c8c0000201c000020204d20007000c
        a21a736e6170
        """)

/// stp.pcap #1: a configuration BPDU from a Linux bridge with STP on (root and
/// bridge 32768/02:00:00:00:00:03): 802.3 (length 38) with LLC 42-42-03, no SNAP.
let stpFrame = bytes(
    hex: """
        0180c2000000020000000003002642420300000000008000020000000003000000008000020000000003800100001400
        01000f00
        """)

/// fragments.pcap #1: the first fragment (MF, id 0x43cb, 552 bytes of data: the UDP
/// header and 544 bytes) of a 700-byte datagram from 192.0.2.1:4000 to 192.0.2.2:9,
/// sent with va's MTU at 576.
let udpFirstFragmentFrame = bytes(
    hex: """
        02000000000202000000000108004500023c43cb2000401190e2c0000201c00002020fa0000902c4e639000102030405
        060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435
        363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465
        666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495
        969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5
        c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5
        f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425
        262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455
        565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485
        868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5
        b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5
        e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00000000000000000000000000000000000000000000
        00000000000000000000
        """)

/// fragments.pcap #2: the rest of it, offset 552, 156 bytes of data: no UDP header.
let udpLastFragmentFrame = bytes(
    hex: """
        0200000000020200000000010800450000b043cb00454011b229c0000201c00002020000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        """)
