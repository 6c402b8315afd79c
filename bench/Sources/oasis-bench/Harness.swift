// The harness: time a body that performs `operations` operations, several runs, and
// report the median cost per operation, the heap allocations per operation, and the
// ratio to a floor or peer measured in the same run.

import CFloor
import Glibc
import MallocInterposerSwift

/// One measured figure.
struct Figure {
    var group: String
    var name: String
    /// Median nanoseconds per operation over the runs.
    var nanosecondsPerOperation: Double
    /// Heap allocations per operation (nil when the interposer is not preloaded).
    var allocationsPerOperation: Double?
    /// What the figure is compared with, and its cost per operation in the same run.
    var floorName: String?
    var floorNanosecondsPerOperation: Double?
    /// Extra unit-specific text, e.g. "3.1 GB/s".
    var note: String = ""

    var ratio: Double? {
        guard let floor = floorNanosecondsPerOperation, floor > 0 else { return nil }
        return nanosecondsPerOperation / floor
    }
}

/// Whether malloc-interposer was preloaded (bench/run.sh does so). Without it the
/// allocation counts would read zero and lie, so they are reported as absent.
let allocationCountingActive: Bool = {
    MallocInterposerSwift.initialize()
    MallocInterposerSwift.hook()
    blackHole([Int](repeating: 7, count: 16))  // a real heap allocation the optimiser keeps
    MallocInterposerSwift.unhook()
    return MallocInterposerSwift.getStatistics().mallocCount > 0
}()

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Runs `body(operations)` `runs` times after one warm-up run and returns the median
/// nanoseconds per operation; then one more run with allocation counting on.
/// Timed runs per figure (`--runs`).
nonisolated(unsafe) var timedRuns = 7

func measure(
    operations: Int, runs: Int = timedRuns, _ body: (Int) -> Void
) -> (nanoseconds: Double, allocations: Double?) {
    body(max(1, operations / 10))  // warm-up: caches, pools, lazy statics
    var samples: [Double] = []
    samples.reserveCapacity(runs)
    for _ in 0..<runs {
        let start = monotonicNanoseconds()
        body(operations)
        let end = monotonicNanoseconds()
        samples.append(Double(end - start) / Double(operations))
    }
    samples.sort()
    var allocations: Double? = nil
    if allocationCountingActive {
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        body(operations)
        MallocInterposerSwift.unhook()
        allocations = Double(MallocInterposerSwift.getStatistics().mallocCount) / Double(operations)
    }
    return (samples[samples.count / 2], allocations)
}

/// Keeps a value alive and opaque to the optimiser.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// Hands an integer to C, so the computation that produced it cannot be dropped.
@inline(__always)
func blackHole<T: FixedWidthInteger>(_ value: T) {
    oasis_floor_sink(UInt64(truncatingIfNeeded: value))
}

/// Returns its argument through a call the optimiser cannot see into, so that a pure
/// computation on it is not hoisted out of a measured loop.
@inline(never) @_optimize(none)
func opaque<T>(_ value: T) -> T {
    value
}

/// Collects figures and prints them as a Markdown table.
final class Report {
    private(set) var figures: [Figure] = []

    func add(_ figure: Figure) {
        figures.append(figure)
        print(Report.row(figure))
    }

    static let header = """
        | group | figure | ns/op | allocs/op | floor or peer | its ns/op | ratio | note |
        | --- | --- | ---: | ---: | --- | ---: | ---: | --- |
        """

    static func row(_ f: Figure) -> String {
        let allocations = f.allocationsPerOperation.map { format($0, digits: 2) } ?? "n/a"
        let floorCost = f.floorNanosecondsPerOperation.map { format($0, digits: 2) } ?? ""
        let ratio = f.ratio.map { format($0, digits: 2) + "×" } ?? ""
        return
            "| \(f.group) | \(f.name) | \(format(f.nanosecondsPerOperation, digits: 2)) | \(allocations) | \(f.floorName ?? "") | \(floorCost) | \(ratio) | \(f.note) |"
    }

    var markdown: String {
        ([Report.header] + figures.map(Report.row)).joined(separator: "\n") + "\n"
    }
}

func format(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled - Double(whole) * scale)
    var text = (value < 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let digitsText = String(fraction)
        text += "." + String(repeating: "0", count: max(0, digits - digitsText.count)) + digitsText
    }
    return text
}
