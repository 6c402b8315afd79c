// Fuzz target: header layouts and field reads over bytes from a stranger. Every
// outcome must be a value or a BitsError; a trap is a bug.

import FuzzSupport
import OasisBits

enum FuzzedHeader: HeaderLayout {
    static let version = Field<UInt8>.first(bits: 4)
    static let length = Field<UInt8>.after(version, bits: 4)
    static let kind = Field<UInt16>.after(length, bits: 13)
    static let tag = Field<UInt32>.after(kind, skippingBytes: 1)
    static let size = tag.end
    static let constants: [Constant] = [.init(version, equals: 4)]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBits(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size))
    if let header = try? bits.header(FuzzedHeader.self) {
        _ = header[FuzzedHeader.kind] &+ UInt16(header[FuzzedHeader.length])
        // A length field taken from the input, then used to slice: must not trap.
        _ = try? header.payload.prefix(Int(header[FuzzedHeader.length]) * 4)
    }
    if size >= 2 {
        let offset = Int(data![0]) - 8
        _ = try? bits.read(UInt64.self, at: offset)
        _ = try? bits.read(Field<UInt16>.at(byte: Int(data![1]) % 64, bit: 3, bits: 13))
        _ = try? bits.split(at: offset)
    }
    _ = InternetChecksum.checksum(of: bits)
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzBits)
            print("replayed \(count) input(s)")
        }
    }
#endif
