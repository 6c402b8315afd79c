import OasisLoop
import Testing

@testable import oasis

/// The tutorial programs, run on a virtual clock: their timing is checked exactly,
/// in microseconds of real time.
@Suite struct TutorialTests {
    @Test func sleepTakesThreeSecondsOfLoopTime() throws {
        let loop = try EventLoop(clock: .virtual)
        let elapsed = try loop.run {
            let start = Time.now!
            try await Sleep.main()
            return Time.now! - start
        }
        #expect(elapsed == .seconds(3))
    }

    @Test func headsOrTailsTakesTwoSecondsNotThree() throws {
        let loop = try EventLoop(clock: .virtual)
        let elapsed = try loop.run {
            let start = Time.now!
            try await HeadsOrTails.main()
            return Time.now! - start
        }
        #expect(elapsed == .seconds(2))
    }

    @Test func echoReadsTenInputsWithinTheirDelays() throws {
        let loop = try EventLoop(clock: .virtual)
        let elapsed = try loop.run {
            let start = Time.now!
            try await Echo.main(inputs: 10)
            return Time.now! - start
        }
        // Each input arrives after a delay below 1.5 s.
        #expect(elapsed < .seconds(15))
        #expect(elapsed >= .zero)
    }

    @Test func dummyInputIsTwentyAs() throws {
        let loop = try EventLoop(clock: .virtual)
        let line = try loop.run {
            var input = Echo.DummyInput()
            return try await input.readLine()
        }
        #expect(line == String(repeating: "a", count: 20))
    }
}
