// The DHCP client's state machine (RFC 2131 §4.4, Figure 5), sans I/O: messages and
// the clock in, messages to send and configuration changes out. `DHCPClientDriver`
// runs it on a stack and a loop.

import OasisWire

/// What a DHCP server granted: the address and what comes with it.
public struct DHCPLease: Hashable, Sendable, CustomStringConvertible {
    /// The address and its subnet (option 1; the address's class when the server
    /// sends no mask).
    public var network: IPv4Network
    /// The first router (option 3), if any.
    public var gateway: IPv4Address?
    /// The DNS servers (option 6), in order of preference.
    public var dnsServers: [IPv4Address]
    /// The interface MTU (option 26), if the server sets one.
    public var mtu: Int?
    /// The domain name (option 15).
    public var domainName: String?
    /// The server that granted it (option 54).
    public var server: IPv4Address
    /// When the lease began: when the request that got it was first sent (RFC 2131
    /// §4.4.1), on the client's clock.
    public var start: Duration
    /// The lease's length (option 51); nil for an infinite lease.
    public var duration: Duration?
    /// T1 and T2 from `start` (options 58 and 59, by default 0.5 and 0.875 of the
    /// lease, RFC 2131 §4.4.5); nil for an infinite lease.
    public var renewalTime: Duration?
    public var rebindingTime: Duration?

    /// The address.
    public var address: IPv4Address { network.address }
    /// When it expires, on the client's clock; nil: never.
    public var expiry: Duration? { duration.map { start + $0 } }

    public var description: String {
        var parts = ["\(network)"]
        if let gateway { parts.append("gateway \(gateway)") }
        if !dnsServers.isEmpty {
            parts.append("dns \(dnsServers.map(\.description).joined(separator: ","))")
        }
        if let mtu { parts.append("mtu \(mtu)") }
        parts.append("from \(server)")
        if let duration {
            parts.append("for \(duration.components.seconds) s")
        } else {
            parts.append("forever")
        }
        return parts.joined(separator: " ")
    }
}

/// A DHCP client (RFC 2131) as a state machine without I/O: it takes received messages
/// and the time, and returns ``Action``s — messages to send, a lease to configure, an
/// address to give up. The caller sends what it is told and calls ``timerFired(now:)``
/// when ``nextDeadline`` passes.
///
/// ```swift
/// var client = DHCPClient(macAddress: mac)
/// perform(client.start(now: clock))                 // DHCPDISCOVER, broadcast
/// perform(client.receive(offer, now: clock))        // DHCPREQUEST
/// perform(client.receive(ack, now: clock))          // .configure(lease): BOUND
/// perform(client.timerFired(now: t1))               // DHCPREQUEST to the server: RENEWING
/// perform(client.stop(now: clock))                  // DHCPRELEASE, .unconfigure
/// ```
///
/// Retransmissions wait 4, 8, 16, 32 and then 64 s, each ±1 s at random (RFC 2131
/// §4.1); while RENEWING and REBINDING, half the time left to T2 or to expiry, no less
/// than a minute (§4.4.5). Transaction IDs are random. Every reply is checked against
/// the transaction, the hardware address and the server chosen; what does not match is
/// counted in ``ignored`` and changes nothing.
public struct DHCPClient: Sendable {
    /// RFC 2131 Figure 5's states (INIT-REBOOT and REBOOTING are not used: the client
    /// keeps no lease across runs), and CHECKING: an acknowledged address being probed
    /// with ARP before it is used (RFC 2131 §4.4.1, RFC 5227).
    public enum State: Hashable, Sendable {
        case initial
        case selecting
        case requesting
        case checking
        case bound
        case renewing
        case rebinding
        case stopped
    }

    /// Where a message goes: 255.255.255.255:67, or a server's address.
    public enum Destination: Hashable, Sendable {
        case broadcast
        case server(IPv4Address)
    }

    /// What the caller does for the client.
    public enum Action: Hashable, Sendable {
        /// Send this message from port 68 to port 67 at `to`.
        case send(DHCPMessage, to: Destination)
        /// Use this lease: configure the address, subnet, gateway and MTU.
        case configure(DHCPLease)
        /// Stop using the address: the lease is gone (expired, refused or released).
        case unconfigure
        /// Probe `address` with ARP (RFC 5227 §2.1.1) and call ``addressInUse(now:)``
        /// if someone answers before the next deadline.
        case probe(IPv4Address)
    }

    /// How the client behaves.
    public struct Configuration: Sendable {
        /// Option 12, sent in DISCOVER and REQUEST when set.
        public var hostName: String?
        /// Option 61; by default 1 and the hardware address (RFC 2132 §9.14).
        public var clientIdentifier: [UInt8]?
        /// Option 55: what to ask for (mask, router, DNS, domain, MTU, lease, T1, T2).
        public var parameterRequestList: [UInt8] = [1, 3, 6, 15, 26, 51, 58, 59]
        /// Ask servers to broadcast their replies (RFC 2131 §4.1: for a client that
        /// cannot take unicast before it has an address; the Oasis stack can).
        public var requestBroadcast = false
        /// The first retransmission timeout and the largest (RFC 2131 §4.1: 4 and 64 s).
        public var initialTimeout: Duration = .seconds(4)
        public var maximumTimeout: Duration = .seconds(64)
        /// The random part of each retransmission timeout: ± this (§4.1: one second).
        public var jitter: Duration = .seconds(1)
        /// REQUESTs sent in REQUESTING before starting over with a DISCOVER.
        public var requestAttempts = 4
        /// The least time between retransmissions in RENEWING and REBINDING (§4.4.5).
        public var minimumRenewalTimeout: Duration = .seconds(60)
        /// The wait in INIT before a new DISCOVER after a NAK or an expiry.
        public var restartDelay: Duration = .seconds(1)
        /// The wait after a DECLINE (RFC 2131 §3.1 step 5: ten seconds at least).
        public var declineDelay: Duration = .seconds(10)
        /// How long an acknowledged address is probed before it is used; zero: not
        /// probed (RFC 5227 §2.1.1 takes 1–2 s per probe and 2 s after them).
        public var probeTime: Duration = .zero
        /// Option 57: the largest message the client takes (an Ethernet frame's worth).
        public var maximumMessageSize: UInt16 = 1500

        public init() {}
    }

    /// Replies dropped, by why.
    public struct Ignored: Hashable, Sendable {
        /// Not a BOOTREPLY, or not for our transaction or hardware address.
        public var notOurs = 0
        /// A message the current state has no use for.
        public var unexpected = 0
        /// An offer or acknowledgement missing what it must carry (a usable address, a
        /// server identifier, a lease time) or from another server than the one chosen.
        public var invalid = 0
    }

    public let macAddress: MACAddress
    public let configuration: Configuration
    public private(set) var state: State = .initial
    /// The lease in use (BOUND, RENEWING, REBINDING), or being checked (CHECKING).
    public private(set) var lease: DHCPLease?
    /// When ``timerFired(now:)`` is next due; nil when nothing is.
    public private(set) var nextDeadline: Duration?
    /// Replies ignored.
    public private(set) var ignored = Ignored()
    /// Messages sent, and leases acknowledged (the first and every renewal).
    public private(set) var messagesSent = 0
    public private(set) var acknowledgements = 0
    /// The reason a server gave with its last DHCPNAK, if any.
    public private(set) var lastRefusal: String?

    private var transactionID: UInt32 = 0
    /// The message retransmitted in SELECTING, REQUESTING, RENEWING and REBINDING.
    private var pending: (message: DHCPMessage, destination: Destination)?
    private var attempts = 0
    private var timeout: Duration = .zero
    /// When this exchange began (for `secs`), and when its REQUEST was first sent.
    private var exchangeStart: Duration = .zero
    private var requestStart: Duration = .zero
    /// The offer chosen in SELECTING.
    private var offered: (address: IPv4Address, server: IPv4Address)?
    private var random: SplitMix

    /// A client for the interface at `macAddress`. `seed` fixes the transaction IDs and
    /// the jitter (for tests); by default they are random.
    public init(macAddress: MACAddress, configuration: Configuration = .init(), seed: UInt64? = nil)
    {
        self.macAddress = macAddress
        self.configuration = configuration
        random = SplitMix(seed: seed ?? UInt64.random(in: 0...UInt64.max))
    }

    // MARK: Inputs

    /// Starts acquiring a lease: a DHCPDISCOVER, broadcast (INIT → SELECTING).
    public mutating func start(now: Duration) -> [Action] {
        guard state == .initial || state == .stopped else { return [] }
        return discover(now: now)
    }

    /// Handles a reply from a server (a UDP payload from port 67, parsed).
    public mutating func receive(_ message: DHCPMessage, now: Duration) -> [Action] {
        guard message.operation == .reply, message.transactionID == transactionID,
            message.clientHardwareAddress == macAddress, let type = message.options.messageType
        else {
            ignored.notOurs += 1
            return []
        }
        switch (state, type) {
        case (.selecting, .offer):
            return select(message, now: now)
        case (.requesting, .ack), (.renewing, .ack), (.rebinding, .ack):
            return acknowledged(message, now: now)
        case (.requesting, .nak), (.renewing, .nak), (.rebinding, .nak):
            // A NAK while REQUESTING must come from the server chosen (§4.4.1).
            if state == .requesting, let offered,
                message.options.serverIdentifier.map({ $0 != offered.server }) ?? false
            {
                ignored.invalid += 1
                return []
            }
            lastRefusal = message.options.message
            return restart(after: configuration.restartDelay, now: now)
        default:
            ignored.unexpected += 1
            return []
        }
    }

    /// Handles the passing of ``nextDeadline``: a retransmission, T1, T2, the end of an
    /// ARP probe, or the lease's expiry.
    public mutating func timerFired(now: Duration) -> [Action] {
        guard let deadline = nextDeadline, now >= deadline else { return [] }
        nextDeadline = nil
        switch state {
        case .initial:
            return discover(now: now)
        case .selecting:
            return retransmit(now: now)
        case .requesting:
            guard attempts < configuration.requestAttempts else { return discover(now: now) }
            return retransmit(now: now)
        case .checking:
            guard let lease else { return discover(now: now) }
            return bind(lease)
        case .bound:
            return renew(now: now)
        case .renewing:
            if let t2 = lease?.rebindingTime.map({ lease!.start + $0 }), now >= t2 {
                return rebind(now: now)
            }
            return retransmit(now: now)
        case .rebinding:
            if let expiry = lease?.expiry, now >= expiry {
                // §4.4.5: the lease is gone; stop using the address, start over.
                return restart(after: configuration.restartDelay, now: now)
            }
            return retransmit(now: now)
        case .stopped:
            return []
        }
    }

    /// Gives the lease back: a DHCPRELEASE to its server (RFC 2131 §4.4.6), and the
    /// address dropped. The client does nothing more until ``start(now:)``.
    public mutating func stop(now: Duration) -> [Action] {
        var actions: [Action] = []
        if let lease, state == .bound || state == .renewing || state == .rebinding {
            var release = newMessage(.release, now: now)
            release.transactionID = nextTransactionID()
            release.seconds = 0
            release.clientAddress = lease.address
            release.options.serverIdentifier = lease.server
            release.options.parameterRequestList = []
            release.options.hostName = nil
            release.options.maximumMessageSize = nil
            actions.append(sent(release, to: .server(lease.server)))
            actions.append(.unconfigure)
        }
        state = .stopped
        lease = nil
        pending = nil
        nextDeadline = nil
        return actions
    }

    /// Says that an ARP probe (or any other check) found the address being CHECKED in
    /// use: the client declines it (RFC 2131 §4.4.1) and starts over after
    /// ``Configuration/declineDelay``.
    public mutating func addressInUse(now: Duration) -> [Action] {
        guard state == .checking, let lease else { return [] }
        var decline = newMessage(.decline, now: now)
        decline.seconds = 0
        decline.options.requestedAddress = lease.address
        decline.options.serverIdentifier = lease.server
        decline.options.parameterRequestList = []
        decline.options.maximumMessageSize = nil
        decline.options.hostName = nil
        let actions = [sent(decline, to: .broadcast)]
        self.lease = nil
        state = .initial
        pending = nil
        nextDeadline = now + configuration.declineDelay
        return actions
    }

    // MARK: Transitions

    /// INIT → SELECTING: a new transaction, a DISCOVER.
    private mutating func discover(now: Duration) -> [Action] {
        transactionID = nextTransactionID()
        exchangeStart = now
        offered = nil
        lease = nil
        state = .selecting
        var message = newMessage(.discover, now: now)
        message.broadcast = configuration.requestBroadcast
        return begin(message, to: .broadcast, now: now)
    }

    /// SELECTING → REQUESTING: the first acceptable offer is taken (§4.4.1).
    private mutating func select(_ offer: DHCPMessage, now: Duration) -> [Action] {
        guard Self.usable(offer.yourAddress), let server = offer.options.serverIdentifier else {
            ignored.invalid += 1
            return []
        }
        offered = (offer.yourAddress, server)
        state = .requesting
        var request = newMessage(.request, now: now)
        request.broadcast = configuration.requestBroadcast
        request.options.requestedAddress = offer.yourAddress
        request.options.serverIdentifier = server
        requestStart = now
        return begin(request, to: .broadcast, now: now)
    }

    /// An ACK in REQUESTING, RENEWING or REBINDING: the lease (re)starts.
    private mutating func acknowledged(_ ack: DHCPMessage, now: Duration) -> [Action] {
        let server = ack.options.serverIdentifier ?? offered?.server ?? lease?.server
        guard Self.usable(ack.yourAddress), let server, let leaseSeconds = ack.options.leaseTime
        else {
            ignored.invalid += 1
            return []
        }
        if state == .requesting, let offered, server != offered.server {
            ignored.invalid += 1
            return []
        }
        let granted = Self.lease(
            from: ack, server: server, seconds: leaseSeconds, start: requestStart)
        acknowledgements += 1
        pending = nil
        let previous = lease
        lease = granted
        if state == .requesting && configuration.probeTime > .zero {
            state = .checking
            nextDeadline = now + configuration.probeTime
            return [.probe(granted.address)]
        }
        // A renewal that changes nothing the stack uses needs no reconfiguration.
        if let previous, previous.network == granted.network, previous.gateway == granted.gateway,
            previous.mtu == granted.mtu
        {
            state = .bound
            nextDeadline = granted.renewalTime.map { granted.start + $0 }
            return []
        }
        return bind(granted)
    }

    /// → BOUND with `lease`: configure it; T1 next.
    private mutating func bind(_ lease: DHCPLease) -> [Action] {
        state = .bound
        self.lease = lease
        pending = nil
        nextDeadline = lease.renewalTime.map { lease.start + $0 }
        return [.configure(lease)]
    }

    /// BOUND → RENEWING at T1: a REQUEST to the server that granted the lease.
    private mutating func renew(now: Duration) -> [Action] {
        guard let lease else { return discover(now: now) }
        state = .renewing
        transactionID = nextTransactionID()
        exchangeStart = now
        requestStart = now
        var request = newMessage(.request, now: now)
        request.clientAddress = lease.address
        return begin(request, to: .server(lease.server), now: now)
    }

    /// RENEWING → REBINDING at T2: the same REQUEST, broadcast to any server.
    private mutating func rebind(now: Duration) -> [Action] {
        guard let lease else { return discover(now: now) }
        state = .rebinding
        transactionID = nextTransactionID()
        requestStart = now
        var request = newMessage(.request, now: now)
        request.clientAddress = lease.address
        return begin(request, to: .broadcast, now: now)
    }

    /// → INIT: the address dropped (if one was in use), a DISCOVER after `delay`.
    private mutating func restart(after delay: Duration, now: Duration) -> [Action] {
        let hadAddress = state == .bound || state == .renewing || state == .rebinding
        state = .initial
        lease = nil
        offered = nil
        pending = nil
        nextDeadline = now + delay
        return hadAddress ? [.unconfigure] : []
    }

    // MARK: Sending and retransmission

    /// Sends the first copy of an exchange's message and arms its retransmission.
    private mutating func begin(_ message: DHCPMessage, to destination: Destination, now: Duration)
        -> [Action]
    {
        pending = (message, destination)
        attempts = 0
        timeout = configuration.initialTimeout
        return retransmit(now: now)
    }

    /// Sends the pending message (again) with `secs` brought up to date, and sets the
    /// next deadline: the backoff of §4.1, or the halving of §4.4.5 while renewing.
    private mutating func retransmit(now: Duration) -> [Action] {
        guard let pending else { return [] }
        var message = pending.message
        let destination = pending.destination
        message.seconds = UInt16(clamping: (now - exchangeStart).components.seconds)
        attempts += 1
        switch state {
        case .renewing, .rebinding:
            guard let lease else { return [] }
            let limit =
                state == .renewing
                ? lease.rebindingTime.map { lease.start + $0 } : lease.expiry
            if let limit {
                let wait = max((limit - now) / 2, configuration.minimumRenewalTimeout)
                nextDeadline = min(now + wait, limit)
            } else {
                nextDeadline = now + configuration.minimumRenewalTimeout
            }
        default:
            nextDeadline = now + jittered(timeout)
            timeout = min(timeout * 2, configuration.maximumTimeout)
        }
        return [sent(message, to: destination)]
    }

    private mutating func sent(_ message: DHCPMessage, to destination: Destination) -> Action {
        messagesSent += 1
        return .send(message, to: destination)
    }

    /// `timeout` ± the configured jitter, uniformly, in milliseconds.
    private mutating func jittered(_ timeout: Duration) -> Duration {
        let spread =
            configuration.jitter.components.seconds * 1000
            + configuration.jitter.components.attoseconds / 1_000_000_000_000_000
        guard spread > 0 else { return timeout }
        let offset = Int64(random.next() % UInt64(2 * spread + 1)) - spread
        return max(timeout + .milliseconds(offset), .milliseconds(1))
    }

    private mutating func nextTransactionID() -> UInt32 {
        UInt32(truncatingIfNeeded: random.next())
    }

    /// A client message of `type` in the current transaction, with the options every
    /// client message carries.
    private func newMessage(_ type: DHCPMessageType, now: Duration) -> DHCPMessage {
        var message = DHCPMessage(
            operation: .request, transactionID: transactionID, clientHardwareAddress: macAddress)
        message.options.messageType = type
        message.options.clientIdentifier =
            configuration.clientIdentifier ?? [1] + macAddress.bytes
        message.options.parameterRequestList = configuration.parameterRequestList
        message.options.maximumMessageSize = configuration.maximumMessageSize
        message.options.hostName = configuration.hostName
        return message
    }

    // MARK: Checks

    /// An address a host may take: not 0, broadcast, multicast, loopback or 240/4.
    private static func usable(_ address: IPv4Address) -> Bool {
        !address.isUnspecified && !address.isBroadcast && !address.isMulticast
            && !address.isLoopback && address.rawValue >> 28 != 0xf
    }

    /// The lease an ACK grants.
    private static func lease(
        from ack: DHCPMessage, server: IPv4Address, seconds: UInt32, start: Duration
    ) -> DHCPLease {
        let address = ack.yourAddress
        let prefix =
            ack.options.subnetMask.flatMap(prefixLength(of:)) ?? classfulPrefix(of: address)
        let network = IPv4Network(address: address, prefixLength: prefix)!
        let gateway = ack.options.routers.first { usable($0) }
        var duration: Duration? = nil
        var t1: Duration? = nil
        var t2: Duration? = nil
        if seconds != UInt32.max {
            let length = Duration.seconds(Int64(seconds))
            duration = length
            // §4.4.5: T1 0.5 and T2 0.875 of the lease unless the server says; kept in
            // order (T1 < T2 < lease) whatever it says.
            var renewal = ack.options.renewalTime.map { Duration.seconds(Int64($0)) } ?? length / 2
            var rebinding =
                ack.options.rebindingTime.map { Duration.seconds(Int64($0)) } ?? length * 7 / 8
            if rebinding >= length || rebinding <= .zero { rebinding = length * 7 / 8 }
            if renewal >= rebinding || renewal <= .zero { renewal = rebinding / 2 }
            t1 = renewal
            t2 = rebinding
        }
        return DHCPLease(
            network: network, gateway: gateway,
            dnsServers: ack.options.domainNameServers.filter(usable),
            mtu: ack.options.interfaceMTU.map(Int.init), domainName: ack.options.domainName,
            server: server, start: start, duration: duration, renewalTime: t1, rebindingTime: t2)
    }

    /// The prefix length of a contiguous mask; nil for a mask with holes.
    private static func prefixLength(of mask: IPv4Address) -> Int? {
        let ones = mask.rawValue.leadingZeroBitCount == 0 ? (~mask.rawValue).leadingZeroBitCount : 0
        guard ones >= 1, ones == 32 || mask.rawValue << ones == 0 else { return nil }
        return ones
    }

    /// The old class's prefix (RFC 791), for a server that sends no mask.
    private static func classfulPrefix(of address: IPv4Address) -> Int {
        switch address.rawValue >> 29 {
        case 0b000...0b011: 8
        case 0b100, 0b101: 16
        default: 24
        }
    }
}

/// SplitMix64: a small, fast generator for transaction IDs and jitter.
struct SplitMix: Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce5_e9b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
