// RankWorkers: one persistent thread per in-process rank (engine and training). `run` hands every
// rank the same job and waits for all of them; the first error is rethrown after every rank has
// returned (ranks blocked in a collective are released by aborting the groups, so nothing hangs).
// The threads hold only the shared mailbox, never the RankWorkers, so dropping it (deinit tells
// the threads to exit) is safe at any time.

import Foundation

public final class RankWorkers: @unchecked Sendable {
    final class Shared: @unchecked Sendable {
        let start: [DispatchSemaphore]
        let done = DispatchSemaphore(value: 0)
        var job: ((Int) throws -> Void)?
        var errors: [Error?]
        let lock = NSLock()
        var stopping = false
        var onError: ((Error) -> Void)?
        init(count: Int) {
            start = (0..<count).map { _ in DispatchSemaphore(value: 0) }
            errors = [Error?](repeating: nil, count: count)
        }

        func loop(_ r: Int) {
            while true {
                start[r].wait()
                if stopping { return }
                do { try job!(r) } catch {
                    lock.lock(); errors[r] = error; lock.unlock()
                    onError?(error)
                }
                done.signal()
            }
        }
    }

    public let count: Int
    let shared: Shared
    public var onError: ((Error) -> Void)? {
        get { shared.onError }
        set { shared.onError = newValue }
    }

    public init(count: Int, stackSize: Int = 16 << 20) {
        self.count = count
        let s = Shared(count: count)
        shared = s
        for r in 0..<count {
            let t = Thread { s.loop(r) }
            t.stackSize = stackSize
            t.name = "turing-rank-\(r)"
            t.start()
        }
    }

    public func run(_ body: @escaping (Int) throws -> Void) throws {
        let s = shared
        s.job = body
        for i in 0..<count { s.errors[i] = nil }
        for sem in s.start { sem.signal() }
        for _ in 0..<count { s.done.wait() }
        s.job = nil
        // report the cause, not the ranks that were merely released by the abort
        let all = s.errors.compactMap { $0 }
        if let e = all.first(where: { if case CollectiveError.aborted = $0 { return false }; return true }) ?? all.first { throw e }
    }

    deinit {
        shared.stopping = true
        for sem in shared.start { sem.signal() }
    }
}
