// The scheduler: promise bind/resolve, one async hop through the loop's executor,
// and timers, each beside the cheapest thing the loop does — running a closure from
// its ready queue.

import OasisLoop

final class Counter {
    var value = 0
}

func runLoopBenchmarks(_ report: Report, scale: Int) {
    let loop: EventLoop
    do {
        loop = try EventLoop(clock: .virtual)
    } catch {
        print("loop benchmarks: cannot create a loop: \(error)")
        return
    }
    let counter = Counter()
    let tick: () -> Void = { counter.value &+= 1 }
    let operations = 1_000_000 / scale

    // The floor: n closures through the ready queue.
    let readyQueue = measure(operations: operations) { n in
        for _ in 0..<n { loop.enqueue(tick) }
        try? loop.run()
    }

    // A pending promise, one map bound to it, resolved: Lwt's wakeup of a bound thread.
    let promises = measure(operations: operations) { n in
        loop.enqueue {
            for _ in 0..<n {
                let (promise, resolver) = loop.makePromise(of: Int.self)
                let mapped = promise.map { $0 &+ 1 }
                resolver.resolve(1)
                blackHole(mapped.result)
            }
        }
        try? loop.run()
    }
    report.add(
        Figure(
            group: "loop", name: "promise: make, map, resolve",
            nanosecondsPerOperation: promises.nanoseconds,
            allocationsPerOperation: promises.allocations, retainsPerOperation: promises.retains,
            floorName: "ready-queue closure", floorNanosecondsPerOperation: readyQueue.nanoseconds))

    // One async hop: a task on the loop yields and is resumed by the loop's executor.
    let hops = measure(operations: operations) { n in
        _ = try? loop.run {
            for _ in 0..<n { await Task.yield() }
        }
    }
    report.add(
        Figure(
            group: "loop", name: "async hop (Task.yield on the loop executor)",
            nanosecondsPerOperation: hops.nanoseconds, allocationsPerOperation: hops.allocations,
            retainsPerOperation: hops.retains,
            floorName: "ready-queue closure", floorNanosecondsPerOperation: readyQueue.nanoseconds))

    // Timers at scattered deadlines over one virtual second, armed and fired.
    var deadlines: [Duration] = []
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<operations {
        deadlines.append(.nanoseconds(Int64.random(in: 0..<1_000_000_000, using: &generator)))
    }
    let timers = measure(operations: operations) { n in
        loop.enqueue {
            for index in 0..<n { loop.schedule(after: deadlines[index], tick) }
        }
        try? loop.run()
    }
    report.add(
        Figure(
            group: "loop", name: "timer armed and fired (heap of up to \(operations))",
            nanosecondsPerOperation: timers.nanoseconds,
            allocationsPerOperation: timers.allocations, retainsPerOperation: timers.retains,
            floorName: "ready-queue closure", floorNanosecondsPerOperation: readyQueue.nanoseconds,
            note: "\(format(1e3 / timers.nanoseconds, digits: 1)) M timers/s"))
    blackHole(counter.value)
}
