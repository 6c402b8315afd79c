// OpenFlow 1.0's actions applied to a frame (§5.2.4 of the specification), in order:
// each output sends the frame as the actions before it left it. Header rewrites go
// through the wire module's in-place rewrites, which update the IPv4 and TCP/UDP
// checksums incrementally (RFC 1624).

import OasisBits
import OasisWire

/// Why an action list could not be applied to a frame.
public enum ActionError: Error, Hashable, Sendable {
    /// A VLAN tag had no headroom to go in front of the frame's payload.
    case noHeadroom
    /// A vendor action: none is supported (`OFPBAC_BAD_VENDOR`).
    case unsupportedVendor(UInt32)
}

/// Applies action lists to frames.
///
/// ```swift
/// try FrameActions.apply(entry.actions, to: &frame) { port, maxLength, frame in
///     datapath.output(frame, to: port, maxLength: maxLength)   // a copy per output
/// }
/// ```
public enum FrameActions {
    /// Applies `actions` to `frame` (an Ethernet frame), calling `output` for each
    /// output or enqueue with the port (special ports as they are: the caller resolves
    /// IN_PORT, FLOOD, ALL, CONTROLLER, LOCAL, NORMAL, TABLE), the CONTROLLER action's
    /// byte limit, and the frame as modified so far. Set-field actions on a frame
    /// without the header they set are skipped, as Open vSwitch does; fields of IP
    /// fragments after the first that are not there (ports) likewise.
    public static func apply(
        _ actions: [Action], to frame: inout Packet,
        output: (PortNumber, UInt16, borrowing Packet) -> Void
    ) throws(ActionError) {
        for action in actions {
            switch action {
            case .output(let port, let maxLength):
                output(port, maxLength, frame)
            case .enqueue(let port, _):
                output(port, 0, frame)
            case .setDLSource(let address):
                setMAC(address, at: 6, in: &frame)
            case .setDLDestination(let address):
                setMAC(address, at: 0, in: &frame)
            case .setVLANID(let vid):
                try setTag(in: &frame) { tci in tci & 0xf000 | vid & 0x0fff }
            case .setVLANPriority(let pcp):
                try setTag(in: &frame) { tci in tci & 0x0fff | UInt16(pcp & 7) << 13 }
            case .stripVLAN:
                stripTag(from: &frame)
            case .setNWSource(let address):
                rewriteIPv4(&frame) { bytes throws(IPv4Error) in
                    try IPv4Rewrite.setSource(IPv4Address(rawValue: address), in: &bytes)
                }
            case .setNWDestination(let address):
                rewriteIPv4(&frame) { bytes throws(IPv4Error) in
                    try IPv4Rewrite.setDestination(IPv4Address(rawValue: address), in: &bytes)
                }
            case .setNWToS(let tos):
                // The DSCP bits; ECN's two stay (the specification's nw_tos is 6 bits).
                rewriteIPv4(&frame) { bytes throws(IPv4Error) in
                    let old = bytes[UInt8.self, at: 1]
                    try IPv4Rewrite.setTypeOfService(tos & 0xfc | old & 0x03, in: &bytes)
                }
            case .setTPSource(let port):
                rewriteIPv4(&frame) { bytes throws(IPv4Error) in
                    try IPv4Rewrite.setSourcePort(port, in: &bytes)
                }
            case .setTPDestination(let port):
                rewriteIPv4(&frame) { bytes throws(IPv4Error) in
                    try IPv4Rewrite.setDestinationPort(port, in: &bytes)
                }
            case .vendor(let vendor, _):
                throw .unsupportedVendor(vendor)
            }
        }
    }

    static let vlanTPID: UInt16 = 0x8100

    private static func setMAC(_ address: MACAddress, at offset: Int, in frame: inout Packet) {
        guard frame.count >= 14 else { return }
        let raw = address.rawValue
        try? frame.write(UInt16(truncatingIfNeeded: raw >> 32), at: offset)
        try? frame.write(UInt32(truncatingIfNeeded: raw), at: offset + 2)
    }

    private static func isTagged(_ frame: borrowing Packet) -> Bool {
        frame.count >= 18 && (try? frame.read(UInt16.self, at: 12)) == vlanTPID
    }

    /// Changes the 802.1Q tag's TCI, pushing a tag (TCI 0 before the change) on an
    /// untagged frame.
    private static func setTag(in frame: inout Packet, _ change: (UInt16) -> UInt16)
        throws(ActionError)
    {
        guard frame.count >= 14 else { return }
        if isTagged(frame) {
            let tci = (try? frame.read(UInt16.self, at: 14)) ?? 0
            try? frame.write(change(tci), at: 14)
            return
        }
        do {
            try frame.prepend(4)
        } catch {
            throw .noHeadroom
        }
        frame.withUnsafeMutableBytes { bytes in
            bytes.baseAddress!.copyMemory(from: bytes.baseAddress! + 4, byteCount: 12)
        }
        try? frame.write(vlanTPID, at: 12)
        try? frame.write(change(0), at: 14)
    }

    private static func stripTag(from frame: inout Packet) {
        guard isTagged(frame) else { return }
        frame.withUnsafeMutableBytes { bytes in
            (bytes.baseAddress! + 4).copyMemory(from: bytes.baseAddress!, byteCount: 12)
        }
        try? frame.shift(by: 4)
    }

    /// Runs `body` on the IPv4 packet of an IPv4 frame (after one 802.1Q tag, if any);
    /// a frame of another type is left alone.
    private static func rewriteIPv4(
        _ frame: inout Packet, _ body: (inout MutableRawSpan) throws(IPv4Error) -> Void
    ) {
        let offset = isTagged(frame) ? 18 : 14
        // A whole IPv4 header's 20 bytes at least (the rewrites check its own length;
        // the ToS action reads its byte first: a shorter frame trapped, found by
        // FuzzSwitch).
        guard frame.count >= offset + 20, (try? frame.read(UInt16.self, at: offset - 2)) == 0x0800
        else { return }
        guard (try? frame.shift(by: offset)) != nil else { return }
        var bytes = frame.mutableBytes
        try? body(&bytes)
        _ = bytes
        try? frame.prepend(offset)
    }
}
