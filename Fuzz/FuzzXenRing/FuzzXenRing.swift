// Fuzz target: the front end of Xen's shared rings over a page a backend controls.
// The input is what a (misbehaving) backend writes: the shared header's indices and
// the slots. The frontend pushes requests, then takes whatever the indices claim;
// every outcome must be a typed error or responses read inside the page — never a
// trap or a read past the ring.

import FuzzSupport
import OasisXen

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzXenRing(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { page.deallocate() }
    page.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
    guard var transmit = try? FrontRing<NetifTransmitLayout>(initialising: page, byteCount: 4096)
    else { return 0 }
    // The frontend's own requests first: a few, as the input's first byte says.
    let requests = size > 0 ? Int(data![0] % 64) : 0
    for index in 0..<requests {
        try? transmit.putRequest(
            NetifTransmitRequest(
                grant: XenGrantReference(UInt32(index)), offset: 0, flags: 0,
                id: UInt16(index), size: 60))
    }
    _ = transmit.pushRequests()
    // Then the backend's view of the page: the rest of the input, over the header and
    // the slots (the request producer the frontend wrote included).
    if size > 1 {
        let count = min(size - 1, 4096)
        page.copyMemory(from: data! + 1, byteCount: count)
    }
    var taken = 0
    while taken < 4 * 256, let waiting = try? transmit.unconsumedResponses(), waiting > 0 {
        for _ in 0..<waiting {
            let response = transmit.takeResponse()
            // What the netfront does with a response: an id must name a request in flight.
            if Int(response.id) >= requests { break }
            taken += 1
        }
        if (try? transmit.finalCheckForResponses()) != true { break }
    }
    if var receive = try? FrontRing<NetifReceiveLayout>(attaching: page, byteCount: 4096),
        let waiting = try? receive.unconsumedResponses()
    {
        for _ in 0..<min(waiting, 256) { _ = receive.takeResponse() }
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzXenRing)
            print("replayed \(count) input(s)")
        }
    }
#endif
