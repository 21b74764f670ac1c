// LoadThreads: the loader's two-core parallelism. Checkpoint loading is bound by copying bytes and by
// faulting in fresh pages, work that splits cleanly over independent files and tensor pieces.
//
// Owns: `concurrentMap` (items taken in order by two threads, results in item order, the error of the
// lowest failing item rethrown, no new item started after a failure) and `onTwoThreads`.
// Does not own: what the items are (adapters, `writePieces`).

import Foundation

/// `body(i)` for i in 0..<count on two threads (one when the machine has one core), results in order.
/// After a failure no new item starts; the error of the lowest failing item is rethrown.
func concurrentMap<T>(_ count: Int, _ body: @escaping (Int) throws -> T) throws -> [T] {
    let state = MapState<T>(count: count)
    let work = UncheckedSendable(body)
    if count <= 1 { state.drain(work.value) } else { onTwoThreads { _ in state.drain(work.value) } }
    return try state.results()
}

private final class MapState<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var failed = false
    private var slots: [Result<T, Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func drain(_ body: (Int) throws -> T) {
        while true {
            lock.lock()
            let i = next; next += 1
            let stop = failed || i >= slots.count
            lock.unlock()
            if stop { return }
            let r = Result { try body(i) }
            lock.lock()
            slots[i] = r
            if case .failure = r { failed = true }
            lock.unlock()
        }
    }

    func results() throws -> [T] {
        for case .failure(let e)? in slots { throw e }
        return try slots.map { try $0!.get() }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable { let value: T; init(_ v: T) { value = v } }

/// Run `body(0)` here and `body(1)` on a new thread, when the machine has two cores or more; else
/// both in turn here. The first call limits glibc malloc to its main arena for the rest of the
/// process (M_ARENA_MAX 1; glibc fixes the limit once), so the loader's threads allocate pieces from
/// the huge-page heap `reserveHugePageHeap` prepares, and a thread never inherits another thread's
/// arena, which that heap does not cover (measured: TP 2 evaluation time unchanged).
func onTwoThreads(_ body: @escaping @Sendable (Int) -> Void) {
    guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { body(0); body(1); return }
    _ = oneMallocArena
    let done = DispatchSemaphore(value: 0)
    let t = Thread { body(1); done.signal() }
    t.start()
    body(0)
    done.wait()
}

private let oneMallocArena: Void = {
    guard let sym = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return }   // malloc.h is not in the Glibc module
    let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
    _ = mallopt(-8, 1)   // M_ARENA_MAX
}()
