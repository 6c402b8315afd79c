// The two rings of a Xen virtual network interface (io/netif.h): transmit (frontend to
// backend) and receive (backend into buffers the frontend posted).

/// `netif_tx_request_t`: one slot of a frame to send (12 bytes).
public struct NetifTransmitRequest: Hashable, Sendable {
    /// The granted page holding the bytes.
    public var grant: XenGrantReference
    /// Where in the page they start.
    public var offset: UInt16
    /// `NETTXF_*`.
    public var flags: UInt16
    /// Echoed in the response.
    public var id: UInt16
    /// This slot's bytes, or on the first slot of a multi-slot packet the whole packet's.
    public var size: UInt16

    public init(grant: XenGrantReference, offset: UInt16, flags: UInt16, id: UInt16, size: UInt16) {
        self.grant = grant
        self.offset = offset
        self.flags = flags
        self.id = id
        self.size = size
    }

    /// `NETTXF_csum_blank`: the checksum is partial, the backend fills it.
    public static let checksumBlank: UInt16 = 1
    /// `NETTXF_data_validated`.
    public static let dataValidated: UInt16 = 2
    /// `NETTXF_more_data`: the packet continues in the next slot.
    public static let moreData: UInt16 = 4
    /// `NETTXF_extra_info`: a `netif_extra_info` slot follows.
    public static let extraInfo: UInt16 = 8
}

/// `netif_tx_response_t` (4 bytes: id, status).
public struct NetifTransmitResponse: Hashable, Sendable {
    public var id: UInt16
    /// `XEN_NETIF_RSP_*`.
    public var status: Int16

    public init(id: UInt16, status: Int16) {
        self.id = id
        self.status = status
    }

    public static let okay: Int16 = 0
    public static let error: Int16 = -1
    public static let dropped: Int16 = -2
    /// The slot of an extra-info request.
    public static let null: Int16 = 1
}

/// `netif_rx_request_t`: a buffer page posted for the backend to fill (8 bytes).
public struct NetifReceiveRequest: Hashable, Sendable {
    public var id: UInt16
    public var grant: XenGrantReference

    public init(id: UInt16, grant: XenGrantReference) {
        self.id = id
        self.grant = grant
    }
}

/// `netif_rx_response_t` (8 bytes).
public struct NetifReceiveResponse: Hashable, Sendable {
    public var id: UInt16
    /// Where in the page the frame starts.
    public var offset: UInt16
    /// `NETRXF_*`.
    public var flags: UInt16
    /// The frame's size when positive, else `XEN_NETIF_RSP_*`.
    public var status: Int16

    public init(id: UInt16, offset: UInt16, flags: UInt16, status: Int16) {
        self.id = id
        self.offset = offset
        self.flags = flags
        self.status = status
    }

    public static let dataValidated: UInt16 = 1
    public static let checksumBlank: UInt16 = 2
    public static let moreData: UInt16 = 4
    public static let extraInfo: UInt16 = 8
    public static let gsoPrefix: UInt16 = 16
}

/// `DEFINE_RING_TYPES(netif_tx, netif_tx_request, netif_tx_response)`: 12-byte slots,
/// 256 of them in a page.
public enum NetifTransmitLayout: RingLayout {
    public static let slotSize = 12

    @inlinable public static func loadRequest(from slot: UnsafeRawPointer) -> NetifTransmitRequest {
        NetifTransmitRequest(
            grant: XenGrantReference(slot.loadLittle(UInt32.self, 0)),
            offset: slot.loadLittle(UInt16.self, 4), flags: slot.loadLittle(UInt16.self, 6),
            id: slot.loadLittle(UInt16.self, 8), size: slot.loadLittle(UInt16.self, 10))
    }

    @inlinable public static func storeRequest(
        _ request: NetifTransmitRequest, to slot: UnsafeMutableRawPointer
    ) {
        slot.storeLittle(request.grant.rawValue, 0)
        slot.storeLittle(request.offset, 4)
        slot.storeLittle(request.flags, 6)
        slot.storeLittle(request.id, 8)
        slot.storeLittle(request.size, 10)
    }

    @inlinable public static func loadResponse(from slot: UnsafeRawPointer)
        -> NetifTransmitResponse
    {
        NetifTransmitResponse(
            id: slot.loadLittle(UInt16.self, 0),
            status: Int16(bitPattern: slot.loadLittle(UInt16.self, 2)))
    }

    @inlinable public static func storeResponse(
        _ response: NetifTransmitResponse, to slot: UnsafeMutableRawPointer
    ) {
        slot.storeLittle(response.id, 0)
        slot.storeLittle(UInt16(bitPattern: response.status), 2)
    }
}

/// `DEFINE_RING_TYPES(netif_rx, netif_rx_request, netif_rx_response)`: 8-byte slots,
/// 256 of them in a page.
public enum NetifReceiveLayout: RingLayout {
    public static let slotSize = 8

    @inlinable public static func loadRequest(from slot: UnsafeRawPointer) -> NetifReceiveRequest {
        NetifReceiveRequest(
            id: slot.loadLittle(UInt16.self, 0),
            grant: XenGrantReference(slot.loadLittle(UInt32.self, 4)))
    }

    @inlinable public static func storeRequest(
        _ request: NetifReceiveRequest, to slot: UnsafeMutableRawPointer
    ) {
        slot.storeLittle(request.id, 0)
        slot.storeLittle(UInt16(0), 2)  // pad
        slot.storeLittle(request.grant.rawValue, 4)
    }

    @inlinable public static func loadResponse(from slot: UnsafeRawPointer)
        -> NetifReceiveResponse
    {
        NetifReceiveResponse(
            id: slot.loadLittle(UInt16.self, 0), offset: slot.loadLittle(UInt16.self, 2),
            flags: slot.loadLittle(UInt16.self, 4),
            status: Int16(bitPattern: slot.loadLittle(UInt16.self, 6)))
    }

    @inlinable public static func storeResponse(
        _ response: NetifReceiveResponse, to slot: UnsafeMutableRawPointer
    ) {
        slot.storeLittle(response.id, 0)
        slot.storeLittle(response.offset, 2)
        slot.storeLittle(response.flags, 4)
        slot.storeLittle(UInt16(bitPattern: response.status), 6)
    }
}

extension UnsafeRawPointer {
    @inlinable func loadLittle<T: FixedWidthInteger>(_ type: T.Type, _ offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawPointer {
    @inlinable func loadLittle<T: FixedWidthInteger>(_ type: T.Type, _ offset: Int) -> T {
        UnsafeRawPointer(self).loadLittle(type, offset)
    }
    @inlinable func storeLittle<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

/// `netif_extra_info_t` (8 bytes): a slot after a packet's first slot that carries no
/// data but says more about the packet, when that slot's flags have `extra_info`
/// (`NETTXF_extra_info`, `NETRXF_extra_info`). It overlays the slot's request (TX)
/// or response (RX), so it has no id: the frontend knows it by its place.
///
/// ```swift
/// let gso = NetifExtraInfo.segmentation(size: 1448, type: NetifExtraInfo.gsoTCPv4)
/// try tx.putRequest(gso.transmitSlot)           // right after the first slot
/// let extra = NetifExtraInfo(overlaying: response)   // RX: the slot after the first
/// ```
public struct NetifExtraInfo: Hashable, Sendable {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    public var type: UInt8
    /// `XEN_NETIF_EXTRA_FLAG_*`: ``more`` when another extra slot follows.
    public var flags: UInt8
    /// For ``typeGSO``: `gso.size`, the segments' payload (the MSS).
    public var segmentSize: UInt16
    /// For ``typeGSO``: `gso.type`, `XEN_NETIF_GSO_TYPE_*`.
    public var segmentationType: UInt8
    /// For ``typeGSO``: `gso.features`.
    public var features: UInt16

    public init(
        type: UInt8, flags: UInt8 = 0, segmentSize: UInt16 = 0, segmentationType: UInt8 = 0,
        features: UInt16 = 0
    ) {
        self.type = type
        self.flags = flags
        self.segmentSize = segmentSize
        self.segmentationType = segmentationType
        self.features = features
    }

    /// A GSO extra: segments of `size` payload bytes of kind `type`.
    public static func segmentation(size: UInt16, type: UInt8) -> NetifExtraInfo {
        NetifExtraInfo(type: typeGSO, segmentSize: size, segmentationType: type)
    }

    /// `XEN_NETIF_EXTRA_TYPE_NONE`: never valid.
    public static let typeNone: UInt8 = 0
    /// `XEN_NETIF_EXTRA_TYPE_GSO`.
    public static let typeGSO: UInt8 = 1
    /// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`, `_DEL`, `_HASH`: known, not used by us.
    public static let typeMulticastAdd: UInt8 = 2
    public static let typeMulticastDelete: UInt8 = 3
    public static let typeHash: UInt8 = 4
    /// `XEN_NETIF_EXTRA_FLAG_MORE`.
    public static let more: UInt8 = 1
    /// `XEN_NETIF_GSO_TYPE_TCPV4`, `_TCPV6`.
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoTCPv6: UInt8 = 2

    /// Reads the extra an RX response slot holds (its 8 bytes, little-endian:
    /// type, flags, size, gso type, pad, features).
    public init(overlaying response: NetifReceiveResponse) {
        type = UInt8(truncatingIfNeeded: response.id)
        flags = UInt8(truncatingIfNeeded: response.id >> 8)
        segmentSize = response.offset
        segmentationType = UInt8(truncatingIfNeeded: response.flags)
        features = UInt16(bitPattern: response.status)
    }

    /// The extra as the TX request slot that carries it (the last 4 of its 12 bytes
    /// are padding, written as zero).
    public var transmitSlot: NetifTransmitRequest {
        NetifTransmitRequest(
            grant: XenGrantReference(
                UInt32(type) | UInt32(flags) << 8 | UInt32(segmentSize) << 16),
            offset: UInt16(segmentationType), flags: features, id: 0, size: 0)
    }

    /// The extra as the RX response slot that carries it (how a backend writes it).
    public var receiveSlot: NetifReceiveResponse {
        NetifReceiveResponse(
            id: UInt16(type) | UInt16(flags) << 8, offset: segmentSize,
            flags: UInt16(segmentationType), status: Int16(bitPattern: features))
    }
}
