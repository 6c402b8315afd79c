// Who may transfer zones (NSD's `provide-xfr`, BIND's `allow-transfer`), and where
// NOTIFY goes (NSD's `notify`): the two settings of a primary server, parsed from the
// command line's text with typed errors.

import OasisNet
import OasisWire

#if canImport(Glibc)
    import Glibc
#endif

/// What is wrong with an entry of `--allow-transfer` or `--notify`.
public enum DNSPrimaryConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Neither an IPv4 or IPv6 address nor a network `address/length`.
    case badAddress(String)
    /// Not `address` or `address:port` with an IPv4 address and a port of 1...65535.
    case badNotifyTarget(String)
    /// More NOTIFY targets than ``maximumNotifyTargets`` (the count given).
    case tooManyNotifyTargets(Int)

    public var description: String {
        switch self {
        case .badAddress(let text):
            "'\(text)' is not an address or a network (192.0.2.1, 192.0.2.0/24, ::1)"
        case .badNotifyTarget(let text):
            "'\(text)' is not an IPv4 address with an optional port (192.0.2.1:53)"
        case .tooManyNotifyTargets(let count):
            "\(count) NOTIFY targets: at most \(maximumNotifyTargets) are allowed"
        }
    }
}

/// The clients allowed to transfer zones: IPv4 addresses and networks. Empty: nobody
/// (transfers are REFUSED, as NSD without `provide-xfr`).
///
/// ```swift
/// let allowed = try TransferAllowList(parsing: ["127.0.0.0/8,192.0.2.7"])
/// allowed.contains(IPv4Address(127, 0, 0, 1))   // true
/// ```
///
/// IPv6 entries are accepted (the same command line may serve a later IPv6 server)
/// but match nothing: the server listens on IPv4.
public struct TransferAllowList: Hashable, Sendable {
    /// The IPv4 networks allowed (a single address is a /32).
    public private(set) var networks: [IPv4Network] = []
    /// IPv6 entries, as written: kept, never matched.
    public private(set) var ignoredIPv6: [String] = []

    /// Nobody.
    public init() {}

    /// Parses each text as a comma-separated list of addresses and networks
    /// (`192.0.2.1`, `192.0.2.0/24`, `::1`, `2001:db8::/32`); spaces around entries
    /// are ignored, empty entries are refused.
    public init(parsing texts: [String]) throws(DNSPrimaryConfigurationError) {
        for text in texts {
            for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
                let entry = raw.trimmingSpaces
                if let network = IPv4Network(entry) {
                    networks.append(network)
                } else if let address = IPv4Address(entry) {
                    networks.append(IPv4Network(address: address, prefixLength: 32)!)
                } else if TransferAllowList.isIPv6(entry) {
                    ignoredIPv6.append(String(entry))
                } else {
                    throw .badAddress(String(raw))
                }
            }
        }
    }

    /// Whether nobody is allowed.
    public var isEmpty: Bool { networks.isEmpty }

    /// Whether `address` may transfer zones.
    public func contains(_ address: IPv4Address) -> Bool {
        networks.contains { $0.contains(address) }
    }

    /// `2001:db8::1` or `2001:db8::/32`.
    static func isIPv6(_ text: Substring) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts[0].contains(":") else { return false }
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...128).contains(length),
                parts[1].allSatisfy({ $0.isASCII && $0.isNumber })
            else { return false }
        }
        var address = in6_addr()
        return inet_pton(AF_INET6, String(parts[0]), &address) == 1
    }
}

/// The most secondaries ``notifyTargets(parsing:)`` accepts: every zone change sends one
/// NOTIFY per secondary, so the list is kept to what a primary really has.
public let maximumNotifyTargets = 64

/// Secondaries to NOTIFY (RFC 1996) when a zone changes: `address[:port]`, port 53 by
/// default; at most ``maximumNotifyTargets`` of them (more throw
/// ``DNSPrimaryConfigurationError/tooManyNotifyTargets(_:)``).
///
/// ```swift
/// let targets = try notifyTargets(parsing: ["127.0.0.1:5301", "192.0.2.8"])
/// ```
public func notifyTargets(parsing texts: [String]) throws(DNSPrimaryConfigurationError)
    -> [DatagramEndpoint]
{
    var targets: [DatagramEndpoint] = []
    for text in texts {
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let entry = raw.trimmingSpaces
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let address = IPv4Address(parts[0]) else {
                throw .badNotifyTarget(String(raw))
            }
            var port: UInt16 = 53
            if parts.count == 2 {
                guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                    let given = UInt16(parts[1]), given > 0
                else { throw .badNotifyTarget(String(raw)) }
                port = given
            }
            targets.append(DatagramEndpoint(address: address, port: port))
            guard targets.count <= maximumNotifyTargets else {
                // Count the rest without keeping them, to say how many were given.
                throw .tooManyNotifyTargets(
                    texts.reduce(0) {
                        $0 + $1.split(separator: ",", omittingEmptySubsequences: false).count
                    })
            }
        }
    }
    return targets
}

extension Substring {
    /// Without leading and trailing spaces.
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
