import OasisBits

/// What was wrong with a DNS message read from the wire.
///
/// Every parser in this module returns one of these for bad input; none traps,
/// allocates without bound or follows a compression pointer more than once per byte
/// of the message.
public enum WireError: Error, Hashable, Sendable {
    /// A read ran past the end of the message (the underlying ``BitsError``).
    case truncated(BitsError)
    /// A compression pointer at `offset` points at `target`, which is not strictly
    /// before it (RFC 1035 §4.1.4 allows only prior occurrences): a loop or a forward
    /// pointer.
    case badPointer(offset: Int, target: Int)
    /// A label at `offset` claims `length` bytes; labels hold at most 63 (RFC 1035 §2.3.4);
    /// this includes the label types `0b01` and `0b10`, which RFC 6891 §5 retired.
    case labelTooLong(offset: Int, length: Int)
    /// The name starting at `offset` is longer than 255 bytes (RFC 1035 §2.3.4).
    case nameTooLong(offset: Int)
    /// The RDATA of a `type` record at `offset` does not match its declared length or
    /// its type's layout.
    case badRecordData(type: RecordType, offset: Int)
    /// More than one OPT record, or one that is not owned by the root (RFC 6891 §6.1.1).
    case badOPT(offset: Int)
    /// An EDNS option runs past the end of its OPT's RDATA.
    case badEDNSOption(offset: Int)
}

extension WireError {
    @inlinable
    static func wrap<T>(_ body: () throws(BitsError) -> T) throws(WireError) -> T {
        do { return try body() } catch { throw .truncated(error) }
    }
}
