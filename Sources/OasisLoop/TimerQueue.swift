/// Names one armed timer so that it can be cancelled. Stale identifiers (of timers
/// that fired or were cancelled) are recognised by their generation and ignored.
public struct TimerID: Hashable, Sendable {
    @usableFromInline let slot: Int32
    @usableFromInline let generation: UInt32

    @inlinable
    init(slot: Int32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }
}

/// What a timer does when it fires. Promise and continuation cases avoid allocating a
/// closure per `sleep`.
@usableFromInline
enum TimerAction {
    case closure(() -> Void)
    case promise(Promise<Void>)
    case continuation(UnsafeContinuation<Void, any Error>)
    /// A slot handed out by `reserve()` whose action is not installed yet.
    case reserved
}

/// Timers in a binary min-heap ordered by (deadline, sequence number): the earliest
/// deadline first, and timers with equal deadlines in the order they were armed.
///
/// Heap entries are small plain values (no reference counting while sifting); the
/// action lives in a slot table beside the heap, and each slot remembers where its
/// entry sits in the heap, so cancelling removes the entry in O(log n) instead of
/// leaving a tombstone. Slots are recycled through a free list; a generation
/// counter makes old `TimerID`s harmless.
@usableFromInline
struct TimerQueue {
    @usableFromInline
    struct Entry {
        @usableFromInline var deadline: Int64
        @usableFromInline var sequence: UInt64
        @usableFromInline var slot: Int32

        @inlinable
        func precedes(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
        }
    }

    @usableFromInline
    struct Slot {
        @usableFromInline var generation: UInt32
        /// Index of this slot's entry in `heap`, or -1 when it is not in the heap.
        @usableFromInline var heapIndex: Int32
        @usableFromInline var action: TimerAction
    }

    @usableFromInline var heap: ContiguousArray<Entry> = []
    @usableFromInline var slots: ContiguousArray<Slot> = []
    @usableFromInline var freeSlots: ContiguousArray<Int32> = []
    /// The sequence number the next armed timer receives.
    @usableFromInline var nextSequence: UInt64 = 0

    @usableFromInline init() {}

    /// Number of armed timers.
    @inlinable var count: Int { heap.count }

    /// The earliest deadline, if any timer is armed.
    @inlinable var nextDeadline: Int64? { heap.first?.deadline }

    /// Takes a slot without arming it (see `arm`).
    @usableFromInline
    mutating func reserve() -> TimerID {
        if let slot = freeSlots.popLast() {
            slots[Int(slot)].action = .reserved
            return TimerID(slot: slot, generation: slots[Int(slot)].generation)
        }
        let slot = Int32(slots.count)
        slots.append(Slot(generation: 0, heapIndex: -1, action: .reserved))
        return TimerID(slot: slot, generation: 0)
    }

    /// Arms a reserved slot. Returns false if the reservation was cancelled meanwhile.
    @usableFromInline
    mutating func arm(_ id: TimerID, deadline: Int64, action: TimerAction) -> Bool {
        let s = Int(id.slot)
        guard slots[s].generation == id.generation, case .reserved = slots[s].action else {
            return false
        }
        slots[s].action = action
        let entry = Entry(deadline: deadline, sequence: nextSequence, slot: id.slot)
        nextSequence &+= 1
        heap.append(entry)
        slots[s].heapIndex = Int32(heap.count - 1)
        siftUp(heap.count - 1)
        return true
    }

    /// Arms a new timer.
    @usableFromInline
    mutating func insert(deadline: Int64, action: TimerAction) -> TimerID {
        let id = reserve()
        _ = arm(id, deadline: deadline, action: action)
        return id
    }

    /// Disarms a timer (or drops a reservation). Returns its action, or nil when the
    /// identifier is stale: the timer already fired or was cancelled.
    @usableFromInline
    mutating func cancel(_ id: TimerID) -> TimerAction? {
        let s = Int(id.slot)
        guard s < slots.count, slots[s].generation == id.generation else { return nil }
        let index = Int(slots[s].heapIndex)
        if index >= 0 { removeEntry(at: index) }
        return release(s)
    }

    /// Removes and returns the earliest timer if it is due at `now` and was armed
    /// before `sequenceLimit` (timers armed by a firing timer wait one iteration).
    @usableFromInline
    mutating func popDue(now: Int64, sequenceLimit: UInt64) -> TimerAction? {
        guard let top = heap.first, top.deadline <= now, top.sequence < sequenceLimit else {
            return nil
        }
        removeEntry(at: 0)
        return release(Int(top.slot))
    }

    @inlinable
    mutating func release(_ s: Int) -> TimerAction {
        let action = slots[s].action
        slots[s].action = .reserved
        slots[s].heapIndex = -1
        slots[s].generation &+= 1
        freeSlots.append(Int32(s))
        return action
    }

    @usableFromInline
    mutating func removeEntry(at index: Int) {
        let last = heap.count - 1
        if index != last {
            heap[index] = heap[last]
            slots[Int(heap[index].slot)].heapIndex = Int32(index)
            heap.removeLast()
            if index > 0 && heap[index].precedes(heap[(index - 1) / 2]) {
                siftUp(index)
            } else {
                siftDown(index)
            }
        } else {
            heap.removeLast()
        }
    }

    // The sifts work on the arrays' buffers directly: one uniqueness check per sift
    // instead of one per element written, and no bounds checks in release builds.

    @usableFromInline
    mutating func siftUp(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { heap in
            slots.withUnsafeMutableBufferPointer { slots in
                var i = start
                let entry = heap[i]
                while i > 0 {
                    let parent = (i &- 1) >> 1
                    let above = heap[parent]
                    guard entry.precedes(above) else { break }
                    heap[i] = above
                    slots[Int(above.slot)].heapIndex = Int32(truncatingIfNeeded: i)
                    i = parent
                }
                heap[i] = entry
                slots[Int(entry.slot)].heapIndex = Int32(truncatingIfNeeded: i)
            }
        }
    }

    @usableFromInline
    mutating func siftDown(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { heap in
            slots.withUnsafeMutableBufferPointer { slots in
                var i = start
                let entry = heap[i]
                let n = heap.count
                while true {
                    var child = 2 &* i &+ 1
                    if child >= n { break }
                    var below = heap[child]
                    if child &+ 1 < n {
                        let right = heap[child &+ 1]
                        if right.precedes(below) {
                            child &+= 1
                            below = right
                        }
                    }
                    guard below.precedes(entry) else { break }
                    heap[i] = below
                    slots[Int(below.slot)].heapIndex = Int32(truncatingIfNeeded: i)
                    i = child
                }
                heap[i] = entry
                slots[Int(entry.slot)].heapIndex = Int32(truncatingIfNeeded: i)
            }
        }
    }
}
