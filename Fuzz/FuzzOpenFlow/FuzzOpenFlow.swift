// Fuzz target: OpenFlow 1.0 messages, the stream framer and flow extraction over bytes
// from a stranger. Every outcome must be a value or an OpenFlowError; a decoded message
// must encode, and decode again to the same value and the same bytes (stability).

import FuzzSupport
import OasisBits
import OasisOpenFlow

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOpenFlow(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let bits = Bits(raw)

    // A stream: every framed message is decoded, or answered with an OFPT_ERROR.
    var framer = MessageFramer(maximumLength: 4096)
    var rest = raw
    while !rest.isEmpty {
        let taken = framer.append(rest)
        rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(taken))
        do {
            while let message = try framer.next() { check(message) }
        } catch {
            _ = try? errorMessage(for: error, offending: bits).encoded()
            break
        }
        if taken == 0 { break }
    }

    // The same bytes as a pcap file.
    _ = OpenFlowPcap.messages(in: bits)

    // The same bytes as one frame: extraction and matching must not trap.
    let tuple = Match(frame: bits, inPort: PortNumber(1))
    _ = tuple.matches(tuple.normalized)
    if let message = try? Message.decode(bits), case .flowMod(let flowMod) = message.body {
        _ = flowMod.match.matches(tuple)
        _ = flowMod.match.covers(tuple)
        _ = tuple.covers(flowMod.match)
        _ = flowMod.match.isStrictlyEqual(to: flowMod.match.normalized)
    }
    return 0
}

/// Decode, encode, decode again: the two values and the two encodings must agree.
func check(_ bits: Bits) {
    let message: Message
    do {
        message = try Message.decode(bits)
    } catch {
        guard let reply = try? errorMessage(for: error, offending: bits).encoded(),
            (try? Message.decode(reply)) != nil
        else { fatalError("an OFPT_ERROR reply does not round-trip") }
        return
    }
    _ = OpenFlowPrinter.describe(message)
    guard let first = try? message.encoded() else { fatalError("decoded message does not encode") }
    guard let again = try? Message.decode(first) else {
        fatalError("re-encoded message does not decode: \(first)")
    }
    guard again == message else {
        fatalError("decode→encode→decode differs: \(message) vs \(again)")
    }
    guard let second = try? again.encoded(), second.copyBytes() == first.copyBytes() else {
        fatalError("encoding is not stable")
    }
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzOpenFlow)
            print("replayed \(count) input(s)")
        }
    }
#endif
