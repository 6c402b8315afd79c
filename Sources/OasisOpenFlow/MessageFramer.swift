// Splits a TCP byte stream into OpenFlow messages by their header's length.

import OasisBits

/// Splits a byte stream (a TCP connection) into whole OpenFlow messages.
///
/// Bytes go in with ``append(_:)-(UnsafeRawBufferPointer)``; whole messages come out
/// of ``next()`` as views of the framer's buffer (no copy per message). Several
/// messages in one read and one message spread over many reads are both fine.
///
/// ```swift
/// var framer = MessageFramer()
/// framer.append(bytesJustRead)
/// while let bits = try framer.next() { let message = try Message.decode(bits) }
/// ```
///
/// Buffering is bounded: a header announcing a length below 8 or above
/// `maximumLength` is an error (the stream cannot be resynchronised after it; send the
/// error and close), and ``append(_:)-(UnsafeRawBufferPointer)`` accepts only what fits
/// in `2 × maximumLength` bytes, returning how much it took.
///
/// The buffer is reused while no message view handed out is alive; if the application
/// still holds one when room is needed, the framer moves to a fresh buffer rather than
/// overwrite bytes that view shows.
public struct MessageFramer {
    /// The largest message length accepted.
    public let maximumLength: Int
    private var buffer: Buffer
    private var start = 0
    private var end = 0

    /// A framer accepting messages of at most `maximumLength` bytes (8…65535).
    public init(maximumLength: Int = maximumMessageLength) {
        self.maximumLength = max(OFHeader.size, min(maximumMessageLength, maximumLength))
        self.buffer = Buffer(byteCount: 2 * self.maximumLength)
    }

    /// Bytes received and not yet handed out as a message.
    public var bufferedCount: Int { end - start }

    /// Appends as many of `bytes` as fit and returns how many that was (all of them
    /// unless more than `2 × maximumLength` bytes are waiting; then call ``next()``
    /// and append the rest).
    @discardableResult
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        if buffer.capacity - end < bytes.count { makeRoom() }
        let taken = min(bytes.count, buffer.capacity - end)
        guard taken > 0, var tail = try? Bits(buffer: buffer, offset: end, count: 0) else {
            return 0
        }
        _ = try? tail.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes.prefix(taken)))
        end += taken
        return taken
    }

    /// Appends as many bytes of `bits` as fit; see ``append(_:)-(UnsafeRawBufferPointer)``.
    @discardableResult
    public mutating func append(_ bits: Bits) -> Int {
        bits.withUnsafeBytes { raw in append(raw) }
    }

    /// The next whole message, or `nil` if more bytes are needed.
    ///
    /// Fails with ``OpenFlowError/badLength(type:length:expected:)`` when a header's
    /// length is below 8 or above `maximumLength`.
    public mutating func next() throws(OpenFlowError) -> Bits? {
        guard end - start >= OFHeader.size,
            let pending = try? Bits(buffer: buffer, offset: start, count: end - start),
            let header = try? pending.header(OFHeader.self)
        else { return nil }
        let length = Int(header[OFHeader.length])
        guard length >= OFHeader.size, length <= maximumLength else {
            throw .badLength(
                type: header[OFHeader.type], length: length, expected: "8...\(maximumLength)")
        }
        guard length <= pending.count, let message = try? pending.prefix(length) else { return nil }
        start += length
        return message
    }

    /// Moves the waiting bytes to the front of the buffer (or of a fresh buffer when a
    /// view of the old one is still alive).
    private mutating func makeRoom() {
        let waiting = end - start
        if isKnownUniquelyReferenced(&buffer) {
            if waiting > 0 && start > 0 {
                (buffer.baseAddress).copyMemory(
                    from: buffer.baseAddress + start, byteCount: waiting)
            }
        } else {
            let fresh = Buffer(byteCount: 2 * maximumLength)
            if waiting > 0 {
                fresh.baseAddress.copyMemory(from: buffer.baseAddress + start, byteCount: waiting)
            }
            buffer = fresh
        }
        start = 0
        end = waiting
    }
}
