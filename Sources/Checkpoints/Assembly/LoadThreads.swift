// LoadThreads: the loader's two-core parallelism. Checkpoint loading is bound by copying bytes and by
// faulting in fresh pages, work that splits cleanly over independent tensor pieces.
//
// Owns: `partitionedMap` (items split between two threads by cost up front, each thread preparing
// for its share first, an idle thread taking the other's smallest items; results in item order, the
// error of the lowest failing item that ran rethrown, no new item started after a failure) and
// `onTwoThreads`.
// Does not own: what the items are (adapters, `writePieces`).

import Foundation

/// `body(i)` for i in 0..<costs.count on two threads. The items are split up front by cost (largest
/// first, each to the less loaded thread) and `prepare(t, total)` runs first on thread t with the cost
/// of its share; a thread that finishes its share early takes the other's last (smallest) items.
/// Results in item order; after a failure no new item starts; the error of the lowest failing item
/// that ran is rethrown.
func partitionedMap<T>(costs: [Int], prepare: @escaping (Int, Int) -> Void, _ body: @escaping (Int) throws -> T) throws -> [T] {
    var lists: [[Int]] = [[], []], load = [0, 0]
    for i in costs.indices.sorted(by: { costs[$0] > costs[$1] }) {
        let t = load[0] <= load[1] ? 0 : 1
        lists[t].append(i); load[t] += costs[i]
    }
    let state = MapState<T>(lists: lists)
    let job = UncheckedSendable(body), before = UncheckedSendable(prepare), total = load
    onTwoThreads { t in
        if state.hasItems(thread: t) { before.value(t, total[t]) }   // (one core: the first thread took all)
        state.drain(thread: t, job.value)
    }
    return try state.results()
}

private final class MapState<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var failed = false
    private var lists: [[Int]]
    private var front = [0, 0], back: [Int]   // list t's items not yet taken: front[t]..<back[t]
    private var slots: [Result<T, Error>?]
    init(lists: [[Int]]) {
        self.lists = lists; back = lists.map(\.count)
        slots = Array(repeating: nil, count: lists.reduce(0) { $0 + $1.count })
    }

    func hasItems(thread t: Int) -> Bool { lock.lock(); defer { lock.unlock() }; return front[t] < back[t] }

    /// Thread t's items from the front of its list, then the other list's from the back, until none
    /// is left or any thread fails.
    func drain(thread t: Int, _ body: (Int) throws -> T) {
        while true {
            lock.lock()
            var item: Int?
            if !failed {
                if front[t] < back[t] { item = lists[t][front[t]]; front[t] += 1 }
                else if front[1 - t] < back[1 - t] { back[1 - t] -= 1; item = lists[1 - t][back[1 - t]] }
            }
            lock.unlock()
            guard let i = item else { return }
            let r = Result { try body(i) }
            lock.lock()
            slots[i] = r
            if case .failure = r { failed = true }
            lock.unlock()
        }
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
