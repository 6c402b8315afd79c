import OasisLoop

// The TCP layer's timers: one loop timer for the layer, armed at the earliest of its
// connections' deadlines, which an indexed binary min-heap keeps in order. A
// connection's deadline moves with every ACK (the retransmission timer restarts);
// here that is a sift in an array of (deadline, connection) pairs, where one loop
// timer per connection cost a cancel, a schedule, a closure context and a weak
// reference's side table each time, and about 150 bytes per connection.

extension TCPLayer {
    /// Connections by their next deadline, earliest first; each knows its own index.
    struct TimerQueue {
        private(set) var entries: [(deadline: Int64, connection: Connection)] = []

        // entries[0], not entries.first: in this generic context `first` went through
        // Collection's unspecialised witness, and that allocated its result on the heap.
        var earliest: Int64? { entries.isEmpty ? nil : entries[0].deadline }
        var count: Int { entries.count }

        /// Sets `connection`'s deadline (adds it, or moves it), or takes it out (nil).
        mutating func set(_ connection: Connection, deadline: Int64?) {
            let index = Int(connection.timerIndex)
            guard let deadline else {
                if index >= 0 { remove(at: index) }
                return
            }
            if index < 0 {
                entries.append((deadline, connection))
                connection.timerIndex = Int32(entries.count - 1)
                siftUp(entries.count - 1)
                return
            }
            let old = entries[index].deadline
            guard old != deadline else { return }
            entries[index].deadline = deadline
            if deadline < old { siftUp(index) } else { siftDown(index) }
        }

        /// Takes out and returns the earliest connection whose deadline is at or before
        /// `now`.
        mutating func popDue(now: Int64) -> Connection? {
            guard !entries.isEmpty, entries[0].deadline <= now else { return nil }
            let connection = entries[0].connection
            remove(at: 0)
            return connection
        }

        private mutating func remove(at index: Int) {
            let removed = entries[index].connection
            removed.timerIndex = -1
            let last = entries.count - 1
            if index != last {
                entries.swapAt(index, last)
                entries[index].connection.timerIndex = Int32(index)
            }
            entries.removeLast()
            guard index < entries.count else { return }
            siftDown(index)
            siftUp(index)
        }

        private mutating func siftUp(_ start: Int) {
            var child = start
            while child > 0 {
                let parent = (child - 1) / 2
                guard entries[child].deadline < entries[parent].deadline else { break }
                swapEntries(child, parent)
                child = parent
            }
        }

        private mutating func siftDown(_ start: Int) {
            var parent = start
            let count = entries.count
            while true {
                let left = 2 * parent + 1
                guard left < count else { return }
                let right = left + 1
                var smallest = left
                if right < count && entries[right].deadline < entries[left].deadline {
                    smallest = right
                }
                guard entries[smallest].deadline < entries[parent].deadline else { return }
                swapEntries(parent, smallest)
                parent = smallest
            }
        }

        private mutating func swapEntries(_ a: Int, _ b: Int) {
            entries.swapAt(a, b)
            entries[a].connection.timerIndex = Int32(a)
            entries[b].connection.timerIndex = Int32(b)
        }
    }

    /// Puts `connection` in the timer queue at its control block's next deadline (or
    /// takes it out when it has none), and the loop timer where the queue now starts.
    func armTimer(_ connection: Connection) {
        timerQueue.set(connection, deadline: connection.tcb.nextDeadline)
        armLoopTimer()
    }

    /// Takes `connection` out of the timer queue (it closed).
    func releaseTimer(_ connection: Connection) {
        guard connection.timerIndex >= 0 else { return }
        timerQueue.set(connection, deadline: nil)
    }

    /// Keeps the loop timer at or before the queue's earliest deadline; one that fires
    /// early finds nothing due and moves on.
    private func armLoopTimer() {
        guard let earliest = timerQueue.earliest else { return }
        if let armed = loopTimer {
            if armed.deadline <= earliest { return }
            _ = loop.cancelTimer(armed.id)
        }
        let id = loop.schedule(at: .nanoseconds(earliest)) { [weak self] in self?.timersFired() }
        loopTimer = (id, earliest)
    }

    /// Runs every connection whose deadline has come, then sends what they want sent
    /// in one flush.
    private func timersFired() {
        loopTimer = nil
        let now = nowNanoseconds
        while let connection = timerQueue.popDue(now: now) {
            if let deadline = connection.tcb.nextDeadline, deadline <= now {
                connection.tcb.timerFired(now: now)
            }
            changed(connection)
        }
        flush()
        armLoopTimer()
    }
}
