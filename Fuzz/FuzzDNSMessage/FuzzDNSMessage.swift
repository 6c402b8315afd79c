// Fuzz target: DNS messages from a stranger — the message parser, and the engine's
// batch prefetch and respond paths over UDP and TCP. Every outcome must be a value, a WireError, or an
// answer that our own parser reads back; a trap is a bug. The answer cache must give,
// asked twice (the second time with another ID), exactly the engine's answer.

import FuzzSupport
import Glibc
import OasisBits
import OasisDNS

let fuzzZone = """
    $TTL 300
    @ SOA ns hostmaster 1 3600 600 86400 60
    @ NS ns
    @ MX 10 mail
    ns A 192.0.2.1
    mail AAAA 2001:db8::1
    www CNAME host
    host A 192.0.2.2
    loop CNAME loop
    *.wild TXT "wild"
    a.b.ent A 192.0.2.3
    sub NS ns.sub
    ns.sub A 192.0.2.4
    _x._tcp SRV 1 2 3 host
    big TXT "\(String(repeating: "x", count: 200))" "\(String(repeating: "y", count: 200))"
    big TXT "\(String(repeating: "z", count: 200))"
    """

/// A zone signed by `ldns-signzone` (NSEC3, salt ab12, 2 iterations; a secure and an
/// insecure delegation, a wildcard, a DNAME): queries with DO reach the DNSSEC paths.
let fuzzSignedZone = """
    signed. 300 IN SOA ns.signed. hostmaster.signed. 1 3600 600 86400 60
    signed. 300 IN RRSIG SOA 13 1 300 20400101000000 20200101000000 33921 signed. dXW4gxEoHxhBLvIA6kKzo4lCSHtTkfbqZp+LNm7sfydtwnQOBzlCvDLvoaVeTXAVPMHLGhD7c7YqFXHANDo1+Q==
    signed. 300 IN NS ns.signed.
    signed. 300 IN RRSIG NS 13 1 300 20400101000000 20200101000000 33921 signed. BOaIhvcy2saEphP9wNki8ftZSjac19OA0sunYeirIKs9kxQBtSBsHE5BHhUUyehzivRzrEAVPudWjUCGQ6tQYw==
    signed. 300 IN MX 10 mail.signed.
    signed. 300 IN RRSIG MX 13 1 300 20400101000000 20200101000000 33921 signed. tG11bnu0Ndxg1kmRDViRtbew2BHUeyglmvj8o8e+jl7OKijNWmnFoySMoJPtKOY1jTbR3SryFnUa8hsR3+o/8g==
    signed. 300 IN DNSKEY 256 3 13 BLxme8nYKLJxwDrxuXH+7Ol+bSep58xSQ+7XBeCUW+KsnICvLhpXMbdxUfVnpdjGRzm6Cjja3u3FeQmBBwWt3g== ;{id = 33921 (zsk), size = 256b}
    signed. 300 IN DNSKEY 257 3 13 0sm1DdJFsJglch+trCFLZ8s5vWxmBIVJvM9N6OxoKLWqwCwBkB41aoDLWNM9PQNdW350RNnuSHO74nmTKvTN4Q== ;{id = 46635 (ksk), size = 256b}
    signed. 300 IN RRSIG DNSKEY 13 1 300 20400101000000 20200101000000 46635 signed. vDRBe40OAo6d9hZ2LMRT0kkkmXaNO/DB2HwQnWmzMBOoF6T7XCWh1TXh62emtTEwlijCTvhDWuZMt7GyJnG3lg==
    signed. 3600 IN NSEC3PARAM 1 0 2 ab12
    signed. 3600 IN RRSIG NSEC3PARAM 13 1 3600 20400101000000 20200101000000 33921 signed. MJ3LBScsbLO+2I5rvCgkcAisbF4aL99efC4Uhl0YYfoQq3AcdKWmQQUuqvxxgxfBPAGdt4ZCrahlXcNWeH7yFg==
    uuh6ba2i7juaci0im5c1cd6j5k60nblh.signed. 60 IN NSEC3 1 0 2 ab12 0lr00r9moeip8hl9h6n74vbiqtj4e196 NS SOA MX RRSIG DNSKEY NSEC3PARAM
    uuh6ba2i7juaci0im5c1cd6j5k60nblh.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. t71Yt8D2/NqNu8vtp8xJn4yOq2733v8+Tq7mcutXyJ3em14j3Cv2Ca8/YmrVUpTMfodEkwQWKB5WjqC3qskkNg==
    dn.signed. 300 IN DNAME host.signed.
    dn.signed. 300 IN RRSIG DNAME 13 2 300 20400101000000 20200101000000 33921 signed. BHCpniccPVkS6F0O0npB9Zsf1dYvRDQ7wvXTfnnz+1xRHP9Bxi9RyIVFheM561d3pNY/6xCNm8n+m/HqO9TI4g==
    jgkhdupdm6r92hj9g511ctvbvh7qfo6h.signed. 60 IN NSEC3 1 0 2 ab12 jpioidqkg59q33lrrqaiaq65ctfa545k DNAME RRSIG
    jgkhdupdm6r92hj9g511ctvbvh7qfo6h.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. 0kCXDJH2T5phnZ0A/lPLDIlYReQERn5xJXTtG+0NaBQ9pDFRkU0C2y0jsJ2P2P5Bs3QnggrXHPNVwZOPBnsDmw==
    t8p7t1138po40htbsg4a9lb7la9jrq68.signed. 60 IN NSEC3 1 0 2 ab12 uuh6ba2i7juaci0im5c1cd6j5k60nblh
    t8p7t1138po40htbsg4a9lb7la9jrq68.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. +juLjQouURZq7BOOPYbvBZk+4lhE8O+0GMYvMIEMyR0DOdzJ6PVpqd5Zbp0BNUyB8f8kWTUmKddY4mlLVknRsg==
    5gci96kvdtstegbddudhhnjhbnh2p5vh.signed. 60 IN NSEC3 1 0 2 ab12 atv9memdtpgtse8gm3cjnnjdp3uqlqrv
    5gci96kvdtstegbddudhhnjhbnh2p5vh.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. RET+s+ErQIpDxLYw6M6mERbyQ3gr3RL0F/6pkdmeZwrlZyx6nhxuqNX+TtvaQsmrhg/oTDdxtMGQb5zFbNblNQ==
    a.b.ent.signed. 300 IN A 192.0.2.3
    a.b.ent.signed. 300 IN RRSIG A 13 4 300 20400101000000 20200101000000 33921 signed. LA3XDYiB8BgUA0paO9NLr+9xUhO8bGbinmTZwgo8vOlLpRTGRQ1yP1rQdmaaKfff6LDagwwsEikkS1XEFEoBLQ==
    0lr00r9moeip8hl9h6n74vbiqtj4e196.signed. 60 IN NSEC3 1 0 2 ab12 3safl6gb66m7sj6pob0hbgm3u94qb70q A RRSIG
    0lr00r9moeip8hl9h6n74vbiqtj4e196.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. esFsCFxG0tdi6SVtRkH+VOGSJkzVG/J/JRRq6FN0GJO0YcjLCYCR8VCvA4dM/aduw/UopEzqg9BYj36WLnWKIA==
    host.signed. 300 IN A 192.0.2.2
    host.signed. 300 IN RRSIG A 13 2 300 20400101000000 20200101000000 33921 signed. A7SBbreBAm2Kswe4ZPPlHxgOMPXpwxYlXG92qeQjD/rYagKVaMXsqFp1/WyHih2Gx5Fc6a23ZQQ3Sw0df1mUfQ==
    de6d27lglthojor1367hb58bbftmcltc.signed. 60 IN NSEC3 1 0 2 ab12 i6jjblfmdi6b249bor0h9dp8pcrhtnem A RRSIG
    de6d27lglthojor1367hb58bbftmcltc.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. VYn15LD+WTFBwUTyzLqJRgIjUVI8mx4udf4GZWIlVBtkDVw4Y+OjNmnolkzMqScnp7VSY58tDO24YPKpp3nFYA==
    mail.signed. 300 IN AAAA 2001:db8::1
    mail.signed. 300 IN RRSIG AAAA 13 2 300 20400101000000 20200101000000 33921 signed. SyTID91JwMfCk4rVUpGVmnMqP0pBLVQQLtsNon1E8LpZGjnb8uMie5SEfnmie0dOL1z/1FuYcxYzXL+TLGvr1w==
    d5ef6s4josp89j61803p8qoco5nau522.signed. 60 IN NSEC3 1 0 2 ab12 de6d27lglthojor1367hb58bbftmcltc AAAA RRSIG
    d5ef6s4josp89j61803p8qoco5nau522.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. k1JNVNV7daxH9csc3i7awheEgdv2C+PEGCt3hVXEVopVXNbnWnVCLL3FsQJC0gcZrWmKOUnBPy2cHMDisphS3A==
    ns.signed. 300 IN A 192.0.2.1
    ns.signed. 300 IN RRSIG A 13 2 300 20400101000000 20200101000000 33921 signed. 8UdoN2my9uBIZXkZxFc9SySsSyS5viYGZ7RYDvtNpTN8bR0COOLDTktRpOs4l+lBqs3HcpoamZMZa+YGYs2umQ==
    jpioidqkg59q33lrrqaiaq65ctfa545k.signed. 60 IN NSEC3 1 0 2 ab12 t8p7t1138po40htbsg4a9lb7la9jrq68 A RRSIG
    jpioidqkg59q33lrrqaiaq65ctfa545k.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. ECT8Iz8kcm5OXBeDZsPskRzwRVwzR9QgW37x01KG+azUy6oL6QH0LsmQoOmhaT0/xuPvBWAgjCBMk3oMlnoNyw==
    open.signed. 300 IN NS ns.open.signed.
    atv9memdtpgtse8gm3cjnnjdp3uqlqrv.signed. 60 IN NSEC3 1 0 2 ab12 b1hvrhtph0qk5a8bp82t9hnvbdgv18r4 NS
    atv9memdtpgtse8gm3cjnnjdp3uqlqrv.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. 00/hBR5HsMHGenAjhvw93zanuvWxM0iXzRxTxgUIo7R8V5ZO0VJ6uR96+XYskeSKzscf/GlK7QrsOr04OhRyUg==
    ns.open.signed. 300 IN A 192.0.2.5
    sub.signed. 300 IN NS ns.sub.signed.
    sub.signed. 300 IN DS 1 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    sub.signed. 300 IN RRSIG DS 13 2 300 20400101000000 20200101000000 33921 signed. dPpZVQ++sMfW1RTAj5zfpWRbLuHG4SKi0lK1CBLHtRhBcMLzVYSe6ZYfHDGjZkQkLeqr1bRT0VczHEJBq5WZlw==
    i6jjblfmdi6b249bor0h9dp8pcrhtnem.signed. 60 IN NSEC3 1 0 2 ab12 jgkhdupdm6r92hj9g511ctvbvh7qfo6h NS DS RRSIG
    i6jjblfmdi6b249bor0h9dp8pcrhtnem.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. KJ21n1HmIgf2aEfVeedRaZhXghak7H5riGJloCrrNDv90wc9rKz8/WhdR3SvNBpqVjCTMwJld+7uU6OkrMJ/2Q==
    ns.sub.signed. 300 IN A 192.0.2.4
    b2uormbbh92ftmksn30je7srg160nuer.signed. 60 IN NSEC3 1 0 2 ab12 d5ef6s4josp89j61803p8qoco5nau522
    b2uormbbh92ftmksn30je7srg160nuer.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. C81/+pZN9ynrB0c7S7h5k9bVKXZg+ZHl4LpG//FDDsKeWnj1BPK4QnvUdemhPeoDhbSkGdEO0skjUd0uNByj4Q==
    *.wild.signed. 300 IN TXT "wild"
    *.wild.signed. 300 IN RRSIG TXT 13 2 300 20400101000000 20200101000000 33921 signed. RS/xNigtqGZfyqHfjfXZj7gFOqIQqQPwscvuCZaoElz/YeM1YINRoduYPoj44yI12cz4Z3dUlRvuTqs+HWFAlw==
    b1hvrhtph0qk5a8bp82t9hnvbdgv18r4.signed. 60 IN NSEC3 1 0 2 ab12 b2uormbbh92ftmksn30je7srg160nuer TXT RRSIG
    b1hvrhtph0qk5a8bp82t9hnvbdgv18r4.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. JquRkLlKmVQwYzdDwTW6KE5ZLZBp6sRxBYIoaeQasl8eLRCKIxoNUTms4ys+bb4jjMlOAJSCwtxptBiYSWPZqA==
    www.signed. 300 IN CNAME host.signed.
    www.signed. 300 IN RRSIG CNAME 13 2 300 20400101000000 20200101000000 33921 signed. sKr7GuPoHhFCyzW94mbGpi656+rF60M9IUcP2crsoyIhDr4UqyCCFHWM3ICdJ5jl57Ti+BjjTJ4iZ1TC4Ko8og==
    3safl6gb66m7sj6pob0hbgm3u94qb70q.signed. 60 IN NSEC3 1 0 2 ab12 5gci96kvdtstegbddudhhnjhbnh2p5vh CNAME RRSIG
    3safl6gb66m7sj6pob0hbgm3u94qb70q.signed. 60 IN RRSIG NSEC3 13 2 60 20400101000000 20200101000000 33921 signed. jAcT0flJBz1eeXG79+wDTGNiBJB5E7nFuBMJoPWlNrb1Lof7qOW7mQ1Pjt9Pky5n4kKqurwnydeYxV00rkm+Zg==
    """

let fuzzEngine: AuthoritativeEngine = {
    let origin = try! DomainName(parsing: "example.")
    let records = try! ZoneFileParser.parse(text: fuzzZone, origin: origin, allowIncludes: false)
    let signedOrigin = try! DomainName(parsing: "signed.")
    let signed = try! ZoneFileParser.parse(
        text: fuzzSignedZone, origin: signedOrigin, allowIncludes: false)
    let engine = try! AuthoritativeEngine(zones: [
        Zone(origin: origin, records: records), Zone(origin: signedOrigin, records: signed),
    ])
    // Saying its version and identity, so CHAOS queries reach the code that answers.
    return engine.answering(as: ServerIdentity(version: "fuzz 1", identity: "fuzz"))
}()

nonisolated(unsafe) let outputBuffer = Buffer(byteCount: 65536 + 64)
nonisolated(unsafe) let cachedBuffer = Buffer(byteCount: 65536 + 64)
// Small, so that inputs evict each other; never standing aside for long.
nonisolated(unsafe) let fuzzCache = AnswerCache(slots: 16, bypassLength: 3)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNSMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size))
    if let message = try? Message(parsing: bits) {
        // Whatever parses must encode and parse back to the same meaning.
        var out = try! Bits(buffer: outputBuffer, offset: 0, count: 0)
        if (try? message.encode(into: &out)) != nil {
            let again = try! Message(parsing: out)
            precondition(again.questions == message.questions && again.answers == message.answers)
        }
    }
    // A zone transfer (as to an allowed client): every message within the limit and
    // well formed, the whole zone in a bounded number of them.
    let transfer = ZoneTransfer(
        engine: fuzzEngine, query: UnsafeRawBufferPointer(start: data, count: size))
    if let transfer {
        let room = UnsafeMutableRawBufferPointer(
            start: outputBuffer.baseAddress, count: outputBuffer.capacity)
        var messages = 0
        while let length = transfer.nextMessage(into: room, limit: 512) {
            precondition(length >= 12 && length <= 512)
            _ = try! Message(parsing: Bits(UnsafeRawBufferPointer(rebasing: room[..<length])))
            messages += 1
            precondition(messages < 1000)
        }
    }
    // The batch hints read the question name of whatever arrives: harmless on anything.
    fuzzEngine.prefetchRecord(fuzzEngine.prefetchSlot(for: bits))
    for transport in [Transport.udp, .tcp, .udp(maximumPayload: 512)] {
        var out = try! Bits(buffer: outputBuffer, offset: 0, count: 0)
        if let length = fuzzEngine.respond(to: bits, transport: transport, into: &out) {
            precondition(length == out.count && length >= 12)
            if case .udp(let maximum) = transport { precondition(length <= max(512, maximum)) }
            // Our answers must be well formed.
            _ = try! Message(parsing: out)
        }
        // Through the cache: the engine's answer, byte for byte, whatever the ID.
        var query = [UInt8](UnsafeRawBufferPointer(start: data, count: size))
        for round in 0..<2 {
            if round == 1 && query.count >= 2 { query[0] ^= 0x5a }
            let direct = try! Bits(buffer: outputBuffer, offset: 0, count: 0)
            let expected = query.withUnsafeBytes { bytes in
                fuzzEngine.respond(
                    to: bytes, transport: transport,
                    into: UnsafeMutableRawBufferPointer(
                        start: direct.buffer.baseAddress, count: direct.tailroom))
            }
            let cached = query.withUnsafeBytes { bytes in
                fuzzCache.respond(
                    with: fuzzEngine, to: bytes, transport: transport,
                    into: UnsafeMutableRawBufferPointer(
                        start: cachedBuffer.baseAddress, count: cachedBuffer.capacity))
            }
            precondition(cached == expected)
            if let length = expected {
                precondition(
                    memcmp(outputBuffer.baseAddress, cachedBuffer.baseAddress, length) == 0)
            }
        }
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzDNSMessage)
            print("replayed \(count) input(s)")
        }
    }
#endif
