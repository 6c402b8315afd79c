import Testing

@testable import OasisNet

@Suite struct TokenBucketTests {
    @Test func tokenBucket() {
        var bucket = TokenBucket(ratePerSecond: 2, burst: 3, now: .zero)
        var taken = 0
        for _ in 0..<5 where bucket.take(now: .zero) { taken += 1 }
        #expect(taken == 3)
        let early = bucket.take(now: .milliseconds(400))
        let refilled = bucket.take(now: .milliseconds(500))
        let again = bucket.take(now: .milliseconds(500))
        #expect(!early && refilled && !again)
        taken = 0
        for _ in 0..<9 where bucket.take(now: .seconds(100)) { taken += 1 }
        #expect(taken == 3)
    }
}
