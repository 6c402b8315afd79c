import CXen
import CXenRingReference
import OasisTestSupport
import Testing

@testable import OasisXen

#if canImport(Glibc)
    import Glibc
#endif

/// One end's operations, through Xen's macros or through the Swift ring, so that the
/// same script can run on any pairing of the two.
struct FrontEnd<Request: Equatable, Response: Equatable> {
    var put: (Request) -> Bool
    var push: () -> Bool
    var unconsumed: () -> Int
    var take: () -> Response
    var finalCheck: () -> Bool
}

struct BackEnd<Request: Equatable, Response: Equatable> {
    var unconsumed: () -> Int
    var take: () -> Request
    var put: (Response) -> Void
    var push: () -> Bool
    var finalCheck: () -> Bool
}

final class Page {
    let byteCount: Int
    let base: UnsafeMutableRawPointer
    init(pages: Int = 1) {
        byteCount = pages * xenPageSize
        base = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: xenPageSize)
        base.initializeMemory(as: UInt8.self, repeating: 0xa5, count: byteCount)
    }
    deinit { base.deallocate() }
    var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: byteCount)) }
}

/// Drives three rings in lockstep with one script: Swift front + C back, C front +
/// Swift back, C front + C back (the reference). Every decision and every byte of the
/// three pages must agree after every step.
func lockstep<Request: Equatable, Response: Equatable>(
    steps: Int, seed: UInt64, ringSize: Int = 256,
    fronts: [FrontEnd<Request, Response>], backs: [BackEnd<Request, Response>], pages: [Page],
    makeRequest: (inout SplitMix64) -> Request,
    makeResponse: (Request, inout SplitMix64) -> Response
) {
    var random = SplitMix64(seed: seed)
    var outstanding: [Request] = []  // taken by the back, not yet answered
    var inFlight = 0  // requests put, responses not yet consumed
    var notifications = (requests: 0, responses: 0)
    for step in 0..<steps {
        switch random.below(6) {
        case 0:  // the front writes requests and pushes them
            let count = random.below(min(40, ringSize - inFlight) + 1)
            for _ in 0..<count {
                let request = makeRequest(&random)
                let accepted = fronts.map { $0.put(request) }
                #expect(Set(accepted) == [true], "step \(step): put")
            }
            inFlight += count
            let notify = fronts.map { $0.push() }
            #expect(Set(notify).count == 1, "step \(step): push requests notify \(notify)")
            if notify[0] { notifications.requests += 1 }
        case 1:  // the back takes requests
            let waiting = backs.map { $0.unconsumed() }
            #expect(Set(waiting).count == 1, "step \(step): unconsumed requests \(waiting)")
            for _ in 0..<random.below(waiting[0] + 1) {
                let taken = backs.map { $0.take() }
                #expect(taken.allSatisfy { $0 == taken[0] }, "step \(step): request")
                outstanding.append(taken[0])
            }
        case 2:  // the back answers some and pushes
            let count = random.below(outstanding.count + 1)
            for _ in 0..<count {
                let response = makeResponse(outstanding.removeFirst(), &random)
                for back in backs { back.put(response) }
            }
            let notify = backs.map { $0.push() }
            #expect(Set(notify).count == 1, "step \(step): push responses notify \(notify)")
            if notify[0] { notifications.responses += 1 }
        case 3:
            let work = backs.map { $0.finalCheck() }
            #expect(Set(work).count == 1, "step \(step): final check for requests \(work)")
        case 4:  // the front consumes responses
            let waiting = fronts.map { $0.unconsumed() }
            #expect(Set(waiting).count == 1, "step \(step): unconsumed responses \(waiting)")
            let count = random.below(waiting[0] + 1)
            for _ in 0..<count {
                let taken = fronts.map { $0.take() }
                #expect(taken.allSatisfy { $0 == taken[0] }, "step \(step): response")
            }
            inFlight -= count
        default:
            let work = fronts.map { $0.finalCheck() }
            #expect(Set(work).count == 1, "step \(step): final check for responses \(work)")
        }
        let reference = pages[0].bytes
        for (index, page) in pages.enumerated().dropFirst() {
            #expect(page.bytes == reference, "step \(step): page \(index) differs")
        }
    }
    // The script must have exercised both answers of the notify decision.
    #expect(notifications.requests > 0 && notifications.responses > 0)
}

@Suite struct SharedRingTests {
    @Test func netifTransmitRingAgreesWithXenMacros() throws {
        let pages = [Page(), Page(), Page()]
        // Page 0: C front, C back. Page 1: Swift front, C back. Page 2: C front, Swift back.
        let cFronts = UnsafeMutablePointer<netif_tx_front_ring_t>.allocate(capacity: 2)
        let cBacks = UnsafeMutablePointer<netif_tx_back_ring_t>.allocate(capacity: 2)
        defer {
            cFronts.deallocate()
            cBacks.deallocate()
        }
        ref_netif_tx_front_init(cFronts, pages[0].base, 4096)
        ref_netif_tx_back_attach(cBacks, pages[0].base, 4096)
        var swiftFront = try FrontRing<NetifTransmitLayout>(
            initialising: pages[1].base, byteCount: 4096)
        ref_netif_tx_back_attach(cBacks + 1, pages[1].base, 4096)
        ref_netif_tx_front_init(cFronts + 1, pages[2].base, 4096)
        var swiftBack = try BackRing<NetifTransmitLayout>(attaching: pages[2].base, byteCount: 4096)
        #expect(swiftFront.size == Int(cFronts.pointee.nr_ents))
        #expect(swiftBack.size == 256)

        typealias Request = NetifTransmitRequest
        typealias Response = NetifTransmitResponse
        func cRequest(_ r: Request) -> netif_tx_request_t {
            netif_tx_request_t(
                gref: r.grant.rawValue, offset: r.offset, flags: r.flags, id: r.id, size: r.size)
        }
        func fromC(_ r: netif_tx_request_t) -> Request {
            Request(
                grant: XenGrantReference(r.gref), offset: r.offset, flags: r.flags, id: r.id,
                size: r.size)
        }
        func cFront(_ ring: UnsafeMutablePointer<netif_tx_front_ring_t>) -> FrontEnd<
            Request, Response
        > {
            FrontEnd(
                put: { request in
                    var c = cRequest(request)
                    return ref_netif_tx_put_request(ring, &c) == 1
                },
                push: { ref_netif_tx_push_requests(ring) != 0 },
                unconsumed: { Int(ref_netif_tx_unconsumed_responses(ring)) },
                take: {
                    var c = netif_tx_response_t()
                    ref_netif_tx_take_response(ring, &c)
                    return Response(id: c.id, status: c.status)
                },
                finalCheck: { ref_netif_tx_final_check_responses(ring) != 0 })
        }
        func cBack(_ ring: UnsafeMutablePointer<netif_tx_back_ring_t>) -> BackEnd<
            Request, Response
        > {
            BackEnd(
                unconsumed: { Int(ref_netif_tx_unconsumed_requests(ring)) },
                take: {
                    var c = netif_tx_request_t()
                    ref_netif_tx_take_request(ring, &c)
                    return fromC(c)
                },
                put: { response in
                    var c = netif_tx_response_t(id: response.id, status: response.status)
                    ref_netif_tx_put_response(ring, &c)
                },
                push: { ref_netif_tx_push_responses(ring) != 0 },
                finalCheck: { ref_netif_tx_final_check_requests(ring) != 0 })
        }
        let swiftFrontEnd = FrontEnd<Request, Response>(
            put: { request in (try? swiftFront.putRequest(request)) != nil },
            push: { swiftFront.pushRequests() },
            unconsumed: { (try? swiftFront.unconsumedResponses()) ?? -1 },
            take: { swiftFront.takeResponse() },
            finalCheck: { (try? swiftFront.finalCheckForResponses()) ?? false })
        let swiftBackEnd = BackEnd<Request, Response>(
            unconsumed: { (try? swiftBack.unconsumedRequests()) ?? -1 },
            take: { swiftBack.takeRequest() },
            put: { response in try! swiftBack.putResponse(response) },
            push: { swiftBack.pushResponses() },
            finalCheck: { (try? swiftBack.finalCheckForRequests()) ?? false })
        lockstep(
            steps: 4000, seed: 0x7e11,
            fronts: [cFront(cFronts), swiftFrontEnd, cFront(cFronts + 1)],
            backs: [cBack(cBacks), cBack(cBacks + 1), swiftBackEnd], pages: pages,
            makeRequest: { random in
                let bits = random.next()
                return Request(
                    grant: XenGrantReference(UInt32(truncatingIfNeeded: bits)),
                    offset: UInt16(truncatingIfNeeded: bits >> 32),
                    flags: UInt16(truncatingIfNeeded: bits >> 48) & 0xf,
                    id: UInt16(truncatingIfNeeded: bits >> 20) & 0xff,
                    size: UInt16(truncatingIfNeeded: bits >> 40))
            },
            makeResponse: { request, random in
                Response(id: request.id, status: Int16(random.below(4)) - 2)
            })
        // Well past one trip around the ring: the indices wrapped the slot mask.
        #expect(swiftFront.privateRequestProducer > 512)
    }

    @Test func netifReceiveRingAgreesWithXenMacros() throws {
        let pages = [Page(), Page(), Page()]
        let cFronts = UnsafeMutablePointer<netif_rx_front_ring_t>.allocate(capacity: 2)
        let cBacks = UnsafeMutablePointer<netif_rx_back_ring_t>.allocate(capacity: 2)
        defer {
            cFronts.deallocate()
            cBacks.deallocate()
        }
        ref_netif_rx_front_init(cFronts, pages[0].base, 4096)
        ref_netif_rx_back_attach(cBacks, pages[0].base, 4096)
        var swiftFront = try FrontRing<NetifReceiveLayout>(
            initialising: pages[1].base, byteCount: 4096)
        ref_netif_rx_back_attach(cBacks + 1, pages[1].base, 4096)
        ref_netif_rx_front_init(cFronts + 1, pages[2].base, 4096)
        var swiftBack = try BackRing<NetifReceiveLayout>(attaching: pages[2].base, byteCount: 4096)
        #expect(swiftFront.size == Int(cFronts.pointee.nr_ents))

        typealias Request = NetifReceiveRequest
        typealias Response = NetifReceiveResponse
        func cFront(_ ring: UnsafeMutablePointer<netif_rx_front_ring_t>) -> FrontEnd<
            Request, Response
        > {
            FrontEnd(
                put: { request in
                    var c = netif_rx_request_t(id: request.id, pad: 0, gref: request.grant.rawValue)
                    return ref_netif_rx_put_request(ring, &c) == 1
                },
                push: { ref_netif_rx_push_requests(ring) != 0 },
                unconsumed: { Int(ref_netif_rx_unconsumed_responses(ring)) },
                take: {
                    var c = netif_rx_response_t()
                    ref_netif_rx_take_response(ring, &c)
                    return Response(id: c.id, offset: c.offset, flags: c.flags, status: c.status)
                },
                finalCheck: { ref_netif_rx_final_check_responses(ring) != 0 })
        }
        func cBack(_ ring: UnsafeMutablePointer<netif_rx_back_ring_t>) -> BackEnd<
            Request, Response
        > {
            BackEnd(
                unconsumed: { Int(ref_netif_rx_unconsumed_requests(ring)) },
                take: {
                    var c = netif_rx_request_t()
                    ref_netif_rx_take_request(ring, &c)
                    return Request(id: c.id, grant: XenGrantReference(c.gref))
                },
                put: { response in
                    var c = netif_rx_response_t(
                        id: response.id, offset: response.offset, flags: response.flags,
                        status: response.status)
                    ref_netif_rx_put_response(ring, &c)
                },
                push: { ref_netif_rx_push_responses(ring) != 0 },
                finalCheck: { ref_netif_rx_final_check_requests(ring) != 0 })
        }
        let swiftFrontEnd = FrontEnd<Request, Response>(
            put: { request in (try? swiftFront.putRequest(request)) != nil },
            push: { swiftFront.pushRequests() },
            unconsumed: { (try? swiftFront.unconsumedResponses()) ?? -1 },
            take: { swiftFront.takeResponse() },
            finalCheck: { (try? swiftFront.finalCheckForResponses()) ?? false })
        let swiftBackEnd = BackEnd<Request, Response>(
            unconsumed: { (try? swiftBack.unconsumedRequests()) ?? -1 },
            take: { swiftBack.takeRequest() },
            put: { response in try! swiftBack.putResponse(response) },
            push: { swiftBack.pushResponses() },
            finalCheck: { (try? swiftBack.finalCheckForRequests()) ?? false })
        lockstep(
            steps: 4000, seed: 0x0a515,
            fronts: [cFront(cFronts), swiftFrontEnd, cFront(cFronts + 1)],
            backs: [cBack(cBacks), cBack(cBacks + 1), swiftBackEnd], pages: pages,
            makeRequest: { random in
                let bits = random.next()
                return Request(
                    id: UInt16(truncatingIfNeeded: bits) & 0xff,
                    grant: XenGrantReference(UInt32(truncatingIfNeeded: bits >> 32)))
            },
            makeResponse: { request, random in
                let bits = random.next()
                return Response(
                    id: request.id, offset: UInt16(truncatingIfNeeded: bits) & 0xfff,
                    flags: UInt16(truncatingIfNeeded: bits >> 16) & 0x1f,
                    status: Int16(truncatingIfNeeded: bits >> 32))
            })
    }

    @Test func responsesBeyondRequestsAreAnErrorNotARead() throws {
        let page = Page()
        var front = try FrontRing<NetifTransmitLayout>(initialising: page.base, byteCount: 4096)
        try front.putRequest(
            NetifTransmitRequest(grant: XenGrantReference(9), offset: 0, flags: 0, id: 0, size: 60))
        _ = front.pushRequests()
        // A backend claims two responses to one request.
        oasis_xen_store_index(page.base + 8, 2)
        #expect(
            throws: SharedRingError.responseProducerOverrun(
                producer: 2, consumer: 0, requestsPushed: 1)
        ) { try front.unconsumedResponses() }
        // And one that runs far ahead (or wraps backwards).
        oasis_xen_store_index(page.base + 8, 0xffff_fff0)
        #expect(throws: SharedRingError.self) { try front.finalCheckForResponses() }
        oasis_xen_store_index(page.base + 8, 1)
        #expect(try front.unconsumedResponses() == 1)
    }

    @Test func requestProducerRunningAheadIsAnError() throws {
        let page = Page()
        _ = try FrontRing<NetifReceiveLayout>(initialising: page.base, byteCount: 4096)
        let back = try BackRing<NetifReceiveLayout>(attaching: page.base, byteCount: 4096)
        oasis_xen_store_index(page.base, 256)
        #expect(try back.unconsumedRequests() == 256)
        oasis_xen_store_index(page.base, 257)
        #expect(
            throws: SharedRingError.requestProducerOverrun(
                producer: 257, responsesProduced: 0, size: 256)
        ) { try back.unconsumedRequests() }
    }

    @Test func areaTooSmallForAHeaderAndASlot() {
        let page = Page()
        #expect(throws: SharedRingError.areaTooSmall(bytes: 70, slotSize: 12)) {
            try FrontRing<NetifTransmitLayout>(initialising: page.base, byteCount: 70)
        }
    }
}
