// Fuzz target: TCP segments (the IP payload) under a fixed pseudo-header: the view and
// its option walk, the repr with the checksum verified or not, and what parses emitted
// again, which must parse to the same meaning and lay its data where the header says.

import FuzzSupport
import OasisBits
import OasisWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTCP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let segment = Packet(copying: UnsafeRawBufferPointer(start: data, count: size), headroom: 0)
    let source = IPv4Address(192, 0, 2, 1)
    let destination = IPv4Address(192, 0, 2, 2)
    _ = try? TCPRepr.parse(segment.bytes, source: source, destination: destination)
    let repr: TCPRepr
    let payload: [UInt8]
    do {
        guard let view = try? TCPSegment(checking: segment.bytes) else { return 0 }
        // Every option the walk gives lies inside the options area, one after another.
        let area = view.optionBytes.byteCount
        var walk = view.options
        var end = 0
        while let next = walk.next() {
            switch next {
            case .success(let option):
                precondition(option.offset == end && option.length >= 1)
                precondition(option.offset + option.length <= area)
                end = option.offset + option.length
            case .failure(let error):
                precondition(error.offset == end && error.offset < area)
            }
        }
        guard
            let parsed = try? TCPRepr.parse(
                view, source: source, destination: destination, verifyChecksum: false)
        else { return 0 }
        precondition(parsed.headerLength == view.headerLength)
        precondition(view.payload.byteCount == size - view.headerLength)
        repr = parsed
        payload = view.payload.withUnsafeBytes { Array($0) }
    }
    // Emitted again: the options we write, unknown ones dropped.
    var expected = repr
    expected.unknownOptions = 0
    var copy = Packet(copying: payload, headroom: 60)
    do throws(TCPError) {
        try repr.emit(prependingTo: &copy, source: source, destination: destination)
    } catch {
        precondition(error == .optionsTooLong(repr.optionsLength) && repr.optionsLength > 40)
        return 0
    }
    guard let again = try? TCPRepr.parse(copy.bytes, source: source, destination: destination)
    else { preconditionFailure("an emitted segment parses") }
    precondition(again == expected && again.headerLength == copy.count - payload.count)
    precondition(again.headerLength == TCPHeader.size + repr.optionsLength)
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzTCP)
            print("replayed \(count) input(s)")
        }
    }
#endif
