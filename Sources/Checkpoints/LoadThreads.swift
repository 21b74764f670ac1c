// LoadThreads: the loader's two-core parallelism. Checkpoint loading is bound by copying bytes and by
// faulting in fresh pages, work that splits cleanly over independent files and tensor pieces.
//
// Owns: `partitionedMap` (items split between two threads by cost up front, each thread preparing
// for its share first; results in item order, the error of the lowest failing item that ran
// rethrown, no new item started after a failure) and `onTwoThreads`.
// Does not own: what the items are (adapters, `writePieces`).

import Foundation

/// `body(i)` for i in 0..<costs.count, the items split between two threads up front by cost (largest
/// first, each to the less loaded thread); `prepare(t, total)` runs first on thread t with the total
/// cost of its items. Results in item order; after a failure no new item starts; the error of the
/// lowest failing item that ran is rethrown.
func partitionedMap<T>(costs: [Int], prepare: @escaping (Int, Int) -> Void, _ body: @escaping (Int) throws -> T) throws -> [T] {
    var lists: [[Int]] = [[], []], load = [0, 0]
    for i in costs.indices.sorted(by: { costs[$0] > costs[$1] }) {
        let t = load[0] <= load[1] ? 0 : 1
        lists[t].append(i); load[t] += costs[i]
    }
    let state = MapState<T>(count: costs.count)
    let job = UncheckedSendable(body), before = UncheckedSendable(prepare), share = lists, total = load
    onTwoThreads { t in
        before.value(t, total[t])
        state.drain(share[t], job.value)
    }
    return try state.results()
}

private final class MapState<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var failed = false
    private var slots: [Result<T, Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }

    /// The given items, in order, until any thread fails.
    func drain(_ items: [Int], _ body: (Int) throws -> T) {
        for i in items {
            lock.lock(); let stop = failed; lock.unlock()
            if stop { return }
            run(i, body)
        }
    }

    private func run(_ i: Int, _ body: (Int) throws -> T) {
        let r = Result { try body(i) }
        lock.lock()
        slots[i] = r
        if case .failure = r { failed = true }
        lock.unlock()
    }

    func results() throws -> [T] {
        for case .failure(let e)? in slots { throw e }
        return try slots.map { try $0!.get() }   // every item ran when none failed
    }
}

struct UncheckedSendable<T>: @unchecked Sendable { let value: T; init(_ v: T) { value = v } }

/// Run `body(0)` here and `body(1)` on a new thread, when the machine has two cores or more; else
/// both in turn here.
func onTwoThreads(_ body: @escaping @Sendable (Int) -> Void) {
    guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { body(0); body(1); return }
    let done = DispatchSemaphore(value: 0)
    let t = Thread { body(1); done.signal() }
    t.start()
    body(0)
    done.wait()
}

