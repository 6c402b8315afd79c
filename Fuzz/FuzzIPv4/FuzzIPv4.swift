// Fuzz target: IPv4 packets (checksum verified or not) and their options walked, and
// every fragment fed to one long-lived reassembler whose memory bound must hold.

import FuzzSupport
import OasisBits
import OasisNet
import OasisWire

nonisolated(unsafe) var reassembler: IPv4Reassembler = {
    var configuration = IPv4Reassembler.Configuration()
    configuration.maximumBytes = 256 * 1024
    configuration.maximumDatagrams = 16
    return IPv4Reassembler(configuration: configuration)
}()
nonisolated(unsafe) var clock: Duration = .zero

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIPv4(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    clock += .milliseconds(250)
    _ = try? IPv4Repr.parse(bits.bytes)
    // Unchecked too, so the fuzzer reaches the reassembler without forging checksums.
    guard let view = try? IPv4Packet(checking: bits.bytes),
        let ip = try? IPv4Repr.parse(view, verifyChecksum: false)
    else { return 0 }
    // The walk gives options one after another inside the options area, and stops at
    // the first malformed one, where validateOptions says it is.
    let area = view.optionBytes.byteCount
    precondition(area == view.headerLength - IPv4Header.size)
    var walk = view.options
    var end = 0
    var malformed: Int?
    let optionBytes = Array(
        UnsafeRawBufferPointer(start: data, count: size)[IPv4Header.size..<view.headerLength])
    while let next = walk.next() {
        switch next {
        case .success(let option):
            precondition(option.offset == end && option.length >= 1)
            precondition(option.offset + option.length <= area)
            precondition(option.length == 1 || option.length >= 2 && option.type > 1)
            _ = option.isCopied
            // Well formed, but refused as Linux refuses it (ip_options_compile): a
            // route option whose pointer is below 4, a timestamp's below 5, a router
            // alert not 4 bytes long.
            if malformed == nil
                && !semanticallyValid(option.type, optionBytes, option.offset, option.length)
            {
                malformed = option.offset
            }
            end = option.offset + option.length
        case .failure(let error):
            precondition(error.offset == end && error.offset < area)
            malformed = malformed ?? error.offset
        }
    }
    do throws(IPv4Error) {
        try view.validateOptions()
        precondition(malformed == nil)
    } catch {
        precondition(error == .badOption(offset: IPv4Header.size + (malformed ?? -1)))
    }
    let headerLength = view.headerLength
    let totalLength = view.totalLength
    guard let payload = try? bits.slice(from: headerLength, length: totalLength - headerLength)
    else { preconditionFailure("a checked packet's payload lies inside it") }
    if ip.isFragment {
        if case .complete(let whole, let data) = reassembler.insert(
            ip, payload: payload, now: clock)
        {
            precondition(data.count == whole.payloadLength)
        }
        precondition(reassembler.bytesHeld <= 256 * 1024 && reassembler.count <= 16)
    }
    if var fragmenter = try? IPv4Fragmenter(header: ip, payload: payload, mtu: 576) {
        while !fragmenter.isFinished {
            var out = Bits([UInt8](), headroom: 64)
            guard (try? fragmenter.nextFragment(into: &out)) != nil else { break }
            precondition(out.count <= 576)
        }
    }
    return 0
}

func semanticallyValid(_ type: UInt8, _ area: [UInt8], _ offset: Int, _ length: Int) -> Bool {
    let pointer = length >= 3 ? Int(area[offset + 2]) : 0
    switch type {
    case 7, 131, 137: return length >= 3 && pointer >= 4
    case 68: return length >= 4 && pointer >= 5
    case 148: return length == 4
    default: return true
    }
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzIPv4)
            print("replayed \(count) input(s)")
        }
    }
#endif
