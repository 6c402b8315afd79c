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
    /// Swift strong retains per operation, each paired with a release (nil when the
    /// retain counter is not preloaded).
    var retainsPerOperation: Double? = nil
    /// What the figure is compared with, and its cost per operation in the same run.
    var floorName: String?
    var floorNanosecondsPerOperation: Double?
    /// Extra unit-specific text, e.g. "3.1 GB/s".
    var note: String = ""
    /// The unit of the figure and its floor when they are not nanoseconds per
    /// operation (e.g. "B" for bytes per connection), printed after each.
    var unit: String? = nil

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

/// The retain counter's interface (bench/retain-counter/retain-counter.c), when
/// bench/run.sh preloads it: counting on and off, and the running totals.
private typealias RefcountEnable = @convention(c) (CInt) -> Void
private typealias RefcountRead =
    @convention(c) (
        UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>
    ) -> Void
private let refcountEnable: RefcountEnable? = dlsym(
    UnsafeMutableRawPointer(bitPattern: 0), "oasis_refcount_enable"
).map { unsafeBitCast($0, to: RefcountEnable.self) }
private let refcountRead: RefcountRead? = dlsym(
    UnsafeMutableRawPointer(bitPattern: 0), "oasis_refcount_read"
).map { unsafeBitCast($0, to: RefcountRead.self) }

/// Whether the retain counter was preloaded (bench/run.sh does so).
let retainCountingActive = refcountEnable != nil && refcountRead != nil

/// Strong retains made while `body` runs (each `swift_retain`, `swift_retain_n` and
/// unowned-to-strong conversion called from outside the Swift runtime).
func countRetains(_ body: () -> Void) -> UInt64? {
    guard let refcountEnable, let refcountRead else { return nil }
    var before: UInt64 = 0
    var after: UInt64 = 0
    var released: UInt64 = 0
    refcountRead(&before, &released)
    refcountEnable(1)
    body()
    refcountEnable(0)
    refcountRead(&after, &released)
    return after &- before
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// What ``measure(operations:runs:_:)`` found: the median nanoseconds per operation,
/// and heap allocations and strong retains per operation from runs with counting on.
struct Measurement {
    var nanoseconds: Double
    var allocations: Double?
    var retains: Double?
}

/// Runs `body(operations)` `runs` times after one warm-up run and returns the median
/// nanoseconds per operation; then one more run with allocation counting on, and one
/// with retain counting on.
/// Timed runs per figure (`--runs`).
nonisolated(unsafe) var timedRuns = 7

func measure(
    operations: Int, runs: Int = timedRuns, _ body: (Int) -> Void
) -> Measurement {
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
    let retains = countRetains { body(operations) }.map { Double($0) / Double(operations) }
    return Measurement(
        nanoseconds: samples[samples.count / 2], allocations: allocations, retains: retains)
}

/// With `--figure WORD`, only the stack group's figures named by WORD run (`echo`,
/// `dns`; the floor always): for callgrind, which counts whatever runs.
nonisolated(unsafe) var figureFilter: String? = nil

/// Whether the figure `word` is to run.
func wants(_ word: String) -> Bool { figureFilter == nil || figureFilter == word }

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
        | group | figure | ns/op | allocs/op | retains/op | floor or peer | its ns/op | ratio | note |
        | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |
        """

    static func row(_ f: Figure) -> String {
        let allocations = f.allocationsPerOperation.map { format($0, digits: 2) } ?? "n/a"
        let retains = f.retainsPerOperation.map { format($0, digits: 2) } ?? "n/a"
        let unit = f.unit.map { " " + $0 } ?? ""
        let floorCost = f.floorNanosecondsPerOperation.map { format($0, digits: 2) + unit } ?? ""
        let ratio = f.ratio.map { format($0, digits: 2) + "×" } ?? ""
        return
            "| \(f.group) | \(f.name) | \(format(f.nanosecondsPerOperation, digits: 2))\(unit) | \(allocations) | \(retains) | \(f.floorName ?? "") | \(floorCost) | \(ratio) | \(f.note) |"
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
