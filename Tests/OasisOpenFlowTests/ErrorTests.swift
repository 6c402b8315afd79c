import OasisBits
import Testing

@testable import OasisOpenFlow

@Suite("Bad input becomes the OFPT_ERROR the specification requires")
struct ErrorTests {
    func error(_ bytes: [UInt8]) -> OpenFlowError? {
        do {
            _ = try Message.decode(Bits(bytes))
            return nil
        } catch {
            return error
        }
    }

    @Test func badVersion() throws {
        let hello = hex("04 00 00 08 00 00 00 01")
        #expect(error(hello) == .badVersion(4, type: 0))
        #expect(error(hello)?.errorKind == .helloFailed(.incompatible))
        #expect(error(hello)?.isNewerVersionHello == true)
        #expect(error(hex("00 00 00 08 00 00 00 01"))?.isNewerVersionHello == false)
        let features = hex("02 05 00 08 00 00 00 07")
        #expect(error(features)?.isNewerVersionHello == false)
        #expect(error(features)?.errorKind == .badRequest(.badVersion))
        let reply = errorMessage(for: error(features)!, offending: Bits(features))
        #expect(reply.xid == 7)
        #expect(
            reply.body
                == .error(ErrorMessage(kind: .badRequest(.badVersion), data: Payload(features))))
    }

    @Test func badType() {
        #expect(error(hex("01 16 00 08 00 00 00 01")) == .badType(22))
        #expect(error(hex("01 ff 00 08 00 00 00 01"))?.errorKind == .badRequest(.badType))
    }

    @Test func badLengths() {
        #expect(error(hex("01 00 00 04 00 00 00 01"))?.errorKind == .badRequest(.badLength))
        #expect(error(hex("01 00 00 10 00 00 00 01"))?.errorKind == .badRequest(.badLength))
        #expect(error(hex("01 00 00"))?.errorKind == .badRequest(.badLength))
        // FEATURES_REQUEST must be exactly 8 bytes; SET_CONFIG exactly 12.
        #expect(
            error(hex("01 05 00 0c 00 00 00 01 00 00 00 00"))?.errorKind == .badRequest(.badLength))
        #expect(error(hex("01 09 00 0a 00 00 00 01 00 00"))?.errorKind == .badRequest(.badLength))
        // FEATURES_REPLY whose port list is not a multiple of 48.
        var features =
            hex("01 06 00 24 00 00 00 01") + [UInt8](repeating: 0, count: 24) + [0, 0, 0, 0]
        features[3] = UInt8(features.count)
        #expect(error(features)?.errorKind == .badRequest(.badLength))
        // PACKET_OUT whose actions_len runs past the end.
        #expect(
            error(hex("01 0d 00 10 00 00 00 01 ff ff ff ff ff ff 00 08"))?.errorKind
                == .badRequest(.badLength))
        // Longer than a bound.
        let big = hex("01 00 04 00 00 00 00 01") + [UInt8](repeating: 0, count: 1016)
        #expect(throws: OpenFlowError.self) { try Message.decode(Bits(big), maximumLength: 512) }
    }

    @Test func badActions() {
        let header = hex("01 0d 00 18 00 00 00 01 ff ff ff ff ff ff 00 08")
        #expect(error(header + hex("00 0c 00 08 00 00 00 00")) == .badActionType(12))
        #expect(error(header + hex("00 0c 00 08 00 00 00 00"))?.errorKind == .badAction(.badType))
        #expect(error(header + hex("00 00 00 10 00 01 00 00"))?.errorKind == .badAction(.badLength))
        #expect(error(header + hex("00 04 00 08 00 01 00 00"))?.errorKind == .badAction(.badLength))
        #expect(error(header + hex("00 00 00 07 00 01 00 00"))?.errorKind == .badAction(.badLength))
    }

    @Test func badFlowModCommandAndStatsType() throws {
        var flowMod = try Message(xid: 1, body: .flowMod(FlowMod(match: .any, command: .add)))
            .encoded()
        try flowMod.write(UInt16(9), at: 56)
        #expect(error(flowMod.copyBytes())?.errorKind == .flowModFailed(.badCommand))
        #expect(
            error(hex("01 10 00 0c 00 00 00 01 00 09 00 00"))?.errorKind == .badRequest(.badStat))
    }

    @Test func errorDataIsTheFirst64Bytes() throws {
        let long = try Message(
            xid: 3, body: .echoRequest(Payload([UInt8](repeating: 7, count: 100)))
        ).encoded()
        let reply = errorMessage(for: .badType(2), offending: long)
        guard case .error(let error) = reply.body else {
            Issue.record("not an error")
            return
        }
        #expect(error.data.count == 64)
        #expect(error.data.bytes == Array(long.copyBytes().prefix(64)))
        #expect(reply.xid == 3)
    }
}
