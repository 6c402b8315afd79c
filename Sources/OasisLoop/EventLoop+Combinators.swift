/// Lwt's combinators over several promises. Each belongs to the loop because an
/// empty list still needs a loop to make its result on. Cancelling the result of
/// any of them cancels every input still pending.
extension EventLoop {
    /// Lwt's `join`: resolves when every input has resolved. It waits for all inputs
    /// to settle even if one fails (no input is left running unobserved), then fails
    /// with the *first* failure in time. An empty list resolves at once.
    public func join<Value>(_ promises: [Promise<Value>]) -> Promise<Void> {
        all(promises).map { _ in () }
    }

    /// ``join(_:)`` that keeps the values, in input order.
    public func all<Value>(_ promises: [Promise<Value>]) -> Promise<[Value]> {
        let result = Promise<[Value]>(on: self)
        let gather = Gather<Value>(count: promises.count)
        if promises.isEmpty {
            result.settle(.success([]))
            return result
        }
        result.cancelTarget = .action { for p in promises { p.cancel() } }
        for (index, promise) in promises.enumerated() {
            promise.onResult { outcome in
                switch outcome {
                case .success(let value): gather.values[index] = value
                case .failure(let error): if gather.firstError == nil { gather.firstError = error }
                }
                gather.remaining -= 1
                guard gather.remaining == 0 else { return }
                if let error = gather.firstError {
                    result.settle(.failure(error))
                } else {
                    result.settle(.success(gather.values.map { $0! }))
                }
            }
        }
        return result
    }

    /// Lwt's `pick`: settles as the first input to settle does (the earliest in the
    /// list if several already have), and cancels all the others.
    ///
    /// - Precondition: `promises` is not empty.
    public func pick<Value>(_ promises: [Promise<Value>]) -> Promise<Value> {
        race(promises, cancelLosers: true)
    }

    /// Lwt's `choose`: settles as the first input to settle does, and leaves the
    /// others running.
    ///
    /// - Precondition: `promises` is not empty.
    public func choose<Value>(_ promises: [Promise<Value>]) -> Promise<Value> {
        race(promises, cancelLosers: false)
    }

    func race<Value>(_ promises: [Promise<Value>], cancelLosers: Bool) -> Promise<Value> {
        precondition(!promises.isEmpty, "pick/choose of no promises would never settle")
        let result = Promise<Value>(on: self)
        if let winner = promises.first(where: { $0.result != nil && !$0.firePending }) {
            if cancelLosers { for p in promises where p !== winner { p.cancel() } }
            result.settle(winner.result!)
            return result
        }
        result.cancelTarget = .action { for p in promises { p.cancel() } }
        for promise in promises {
            promise.onResult { outcome in
                guard result.settle(outcome) else { return }
                if cancelLosers { for p in promises where p !== promise { p.cancel() } }
            }
        }
        return result
    }
}

/// Shared state of one `all`.
final class Gather<Value> {
    var values: [Value?]
    var remaining: Int
    var firstError: (any Error)?

    init(count: Int) {
        values = Array(repeating: nil, count: count)
        remaining = count
    }
}
