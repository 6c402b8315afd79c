// The blkif ring against Xen's own io/blkif.h: the structs as the C compiler lays them
// out, requests written by Swift read as C structs and the other way round, and the
// ring driven in lockstep with io/ring.h's macros on one page and on four.

import CXen
import CXenRingReference
import OasisTestSupport
import Testing

@testable import OasisXen

@Suite struct BlkifRingTests {
    @Test func layoutMatchesXenHeaders() {
        let c = ref_blkif_layout()
        typealias O = BlkifLayout.Offset
        #expect(Int(c.entry_size) == BlkifLayout.slotSize)
        #expect(Int(c.request_size) == 112)
        #expect(Int(c.request_operation) == O.operation)
        #expect(Int(c.request_nr_segments) == O.segmentCount)
        #expect(Int(c.request_handle) == O.handle)
        #expect(Int(c.request_id) == O.id)
        #expect(Int(c.request_sector_number) == O.sector)
        #expect(Int(c.request_seg) == O.segments)
        #expect(Int(c.segment_size) == BlkifSegment.size)
        #expect(c.segment_gref == 0 && c.segment_first_sect == 4 && c.segment_last_sect == 5)
        #expect(Int(c.discard_size) == 32)
        #expect(Int(c.discard_flag) == O.discardFlag)
        #expect(Int(c.discard_handle) == O.handle)
        #expect(Int(c.discard_id) == O.id)
        #expect(Int(c.discard_sector_number) == O.sector)
        #expect(Int(c.discard_nr_sectors) == O.discardSectors)
        #expect(Int(c.indirect_size) == 64)
        #expect(Int(c.indirect_indirect_op) == O.indirectOperation)
        #expect(Int(c.indirect_nr_segments) == O.indirectSegmentCount)
        #expect(Int(c.indirect_id) == O.id)
        #expect(Int(c.indirect_sector_number) == O.sector)
        #expect(Int(c.indirect_handle) == O.indirectHandle)
        #expect(Int(c.indirect_grefs) == O.indirectGrants)
        #expect(Int(c.response_size) == 16)
        #expect(c.response_id == 0)
        #expect(Int(c.response_operation) == O.responseOperation)
        #expect(Int(c.response_status) == O.responseStatus)
        #expect(Int(c.ring_size_one_page) == 32)
        #expect(BlkifSegment.perIndirectPage == 512)
        #expect(Int(BLKIF_MAX_SEGMENTS_PER_REQUEST) == BlkifReadWriteRequest.maximumSegments)
        #expect(Int(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST) == BlkifIndirectRequest.maximumPages)
        #expect(BlkifOperation.flushDiskCache == UInt8(BLKIF_OP_FLUSH_DISKCACHE))
        #expect(BlkifOperation.discard == UInt8(BLKIF_OP_DISCARD))
        #expect(BlkifOperation.indirect == UInt8(BLKIF_OP_INDIRECT))
        #expect(BlkifResponse.notSupported == Int16(BLKIF_RSP_EOPNOTSUPP))
    }

    @Test func requestsWrittenBySwiftAreReadByC() {
        let page = Page()
        let slot = page.base
        let segments = (0..<11).map {
            BlkifSegment(
                grant: XenGrantReference(UInt32(100 + $0)), firstSector: UInt8($0 % 8),
                lastSector: 7)
        }
        BlkifLayout.storeRequest(
            .readWrite(
                BlkifReadWriteRequest(
                    operation: BlkifOperation.write, handle: 51712, id: 0x1122_3344_5566_7788,
                    sectorNumber: 0x0102_0304_0506, segments: segments)), to: slot)
        let rw = slot.load(as: blkif_request.self)
        #expect(rw.operation == UInt8(BLKIF_OP_WRITE))
        #expect(rw.nr_segments == 11)
        #expect(rw.handle == 51712)
        #expect(rw.id == 0x1122_3344_5566_7788)
        #expect(rw.sector_number == 0x0102_0304_0506)
        var cSegments = rw.seg
        withUnsafeBytes(of: &cSegments) { raw in
            let c = raw.bindMemory(to: blkif_request_segment.self)
            for index in 0..<11 {
                #expect(c[index].gref == UInt32(100 + index))
                #expect(c[index].first_sect == UInt8(index % 8))
                #expect(c[index].last_sect == 7)
            }
        }
        BlkifLayout.storeRequest(
            .discard(
                BlkifDiscardRequest(
                    flags: BlkifDiscardRequest.secure, handle: 768, id: 9, sectorNumber: 4096,
                    sectorCount: 1 << 33)), to: slot)
        let discard = slot.load(as: blkif_request_discard.self)
        #expect(discard.operation == UInt8(BLKIF_OP_DISCARD))
        #expect(discard.flag == UInt8(BLKIF_DISCARD_SECURE))
        #expect(discard.handle == 768 && discard.id == 9 && discard.sector_number == 4096)
        #expect(discard.nr_sectors == 1 << 33)
        let grants = (0..<3).map { XenGrantReference(UInt32(7000 + $0)) }
        BlkifLayout.storeRequest(
            .indirect(
                BlkifIndirectRequest(
                    indirectOperation: BlkifOperation.read, segmentCount: 1100, id: 77,
                    sectorNumber: 123_456, handle: 51728, indirectGrants: grants)), to: slot)
        let indirect = slot.load(as: blkif_request_indirect.self)
        #expect(indirect.operation == UInt8(BLKIF_OP_INDIRECT))
        #expect(indirect.indirect_op == UInt8(BLKIF_OP_READ))
        #expect(indirect.nr_segments == 1100)
        #expect(indirect.id == 77 && indirect.sector_number == 123_456)
        #expect(indirect.handle == 51728)
        var cGrants = indirect.indirect_grefs
        withUnsafeBytes(of: &cGrants) { raw in
            let c = raw.bindMemory(to: grant_ref_t.self)
            #expect(Array(c.prefix(4)) == [7000, 7001, 7002, 0])
        }
        // And back: what Swift reads is what it wrote.
        #expect(
            BlkifLayout.loadRequest(from: slot)
                == .indirect(
                    BlkifIndirectRequest(
                        indirectOperation: BlkifOperation.read, segmentCount: 1100, id: 77,
                        sectorNumber: 123_456, handle: 51728, indirectGrants: grants)))
    }

    @Test func responsesWrittenByCAreReadBySwift() {
        let page = Page()
        var c = blkif_response()
        c.id = 0xdead_beef_0000_0001
        c.operation = UInt8(BLKIF_OP_FLUSH_DISKCACHE)
        c.status = Int16(BLKIF_RSP_EOPNOTSUPP)
        page.base.storeBytes(of: c, as: blkif_response.self)
        #expect(
            BlkifLayout.loadResponse(from: page.base)
                == BlkifResponse(
                    id: 0xdead_beef_0000_0001, operation: BlkifOperation.flushDiskCache,
                    status: BlkifResponse.notSupported))
    }

    @Test(arguments: [1, 4])
    func blkifRingAgreesWithXenMacros(pageCount: Int) throws {
        let bytes = pageCount * xenPageSize
        let pages = [Page(pages: pageCount), Page(pages: pageCount), Page(pages: pageCount)]
        let cFronts = UnsafeMutablePointer<blkif_front_ring_t>.allocate(capacity: 2)
        let cBacks = UnsafeMutablePointer<blkif_back_ring_t>.allocate(capacity: 2)
        defer {
            cFronts.deallocate()
            cBacks.deallocate()
        }
        ref_blkif_front_init(cFronts, pages[0].base, UInt32(bytes))
        ref_blkif_back_attach(cBacks, pages[0].base, UInt32(bytes))
        var swiftFront = try FrontRing<BlkifLayout>(initialising: pages[1].base, byteCount: bytes)
        ref_blkif_back_attach(cBacks + 1, pages[1].base, UInt32(bytes))
        ref_blkif_front_init(cFronts + 1, pages[2].base, UInt32(bytes))
        var swiftBack = try BackRing<BlkifLayout>(attaching: pages[2].base, byteCount: bytes)
        #expect(swiftFront.size == Int(cFronts.pointee.nr_ents))
        #expect(swiftBack.size == (pageCount == 1 ? 32 : 128))

        typealias Request = BlkifRequest
        typealias Response = BlkifResponse
        func cRequest(_ request: Request) -> blkif_request {
            var c = blkif_request()
            guard case .readWrite(let r) = request else { return c }
            c.operation = r.operation
            c.nr_segments = UInt8(r.segments.count)
            c.handle = r.handle
            c.id = r.id
            c.sector_number = r.sectorNumber
            withUnsafeMutableBytes(of: &c.seg) { raw in
                let segments = raw.bindMemory(to: blkif_request_segment.self)
                for (index, segment) in r.segments.enumerated() {
                    segments[index] = blkif_request_segment(
                        gref: segment.grant.rawValue, first_sect: segment.firstSector,
                        last_sect: segment.lastSector)
                }
            }
            return c
        }
        func fromC(_ c: blkif_request) -> Request {
            var copy = c
            return withUnsafeBytes(of: &copy) { BlkifLayout.loadRequest(from: $0.baseAddress!) }
        }
        func cFront(_ ring: UnsafeMutablePointer<blkif_front_ring_t>) -> FrontEnd<
            Request, Response
        > {
            FrontEnd(
                put: { request in
                    var c = cRequest(request)
                    return ref_blkif_put_request(ring, &c) == 1
                },
                push: { ref_blkif_push_requests(ring) != 0 },
                unconsumed: { Int(ref_blkif_unconsumed_responses(ring)) },
                take: {
                    var c = blkif_response()
                    ref_blkif_take_response(ring, &c)
                    return Response(id: c.id, operation: c.operation, status: c.status)
                },
                finalCheck: { ref_blkif_final_check_responses(ring) != 0 })
        }
        func cBack(_ ring: UnsafeMutablePointer<blkif_back_ring_t>) -> BackEnd<Request, Response> {
            BackEnd(
                unconsumed: { Int(ref_blkif_unconsumed_requests(ring)) },
                take: {
                    var c = blkif_request()
                    ref_blkif_take_request(ring, &c)
                    return fromC(c)
                },
                put: { response in
                    var c = blkif_response()
                    c.id = response.id
                    c.operation = response.operation
                    c.status = response.status
                    ref_blkif_put_response(ring, &c)
                },
                push: { ref_blkif_push_responses(ring) != 0 },
                finalCheck: { ref_blkif_final_check_requests(ring) != 0 })
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
            steps: 3000, seed: 0xb1_0c + UInt64(pageCount), ringSize: swiftFront.size,
            fronts: [cFront(cFronts), swiftFrontEnd, cFront(cFronts + 1)],
            backs: [cBack(cBacks), cBack(cBacks + 1), swiftBackEnd], pages: pages,
            makeRequest: { random in
                let bits = random.next()
                let count = random.below(12)
                return .readWrite(
                    BlkifReadWriteRequest(
                        operation: UInt8(bits & 3), handle: UInt16(truncatingIfNeeded: bits >> 8),
                        id: random.next(), sectorNumber: bits >> 12,
                        segments: (0..<count).map { index in
                            BlkifSegment(
                                grant: XenGrantReference(
                                    UInt32(truncatingIfNeeded: bits >> UInt64(index))),
                                firstSector: UInt8(index % 8), lastSector: 7)
                        }))
            },
            makeResponse: { request, random in
                Response(
                    id: request.id, operation: request.echoedOperation,
                    status: Int16(random.below(3)) - 2)
            })
        #expect(swiftFront.privateRequestProducer > UInt32(2 * swiftFront.size))
    }
}
