// RankWorkers: one persistent thread per in-process rank (engine and training). `run` hands every rank the same job and
// waits for all of them; the first error is rethrown after every rank has returned (ranks blocked
// in a collective are released by aborting the groups, so nothing hangs).

import Foundation

public final class RankWorkers: @unchecked Sendable {
    public let count: Int
    private var threads: [Thread] = []
    private let start: [DispatchSemaphore]
    private let done = DispatchSemaphore(value: 0)
    private var job: ((Int) throws -> Void)?
    private var errors: [Error?]
    private let lock = NSLock()
    private var stopping = false
    public var onError: ((Error) -> Void)?

    public init(count: Int, stackSize: Int = 16 << 20) {
        self.count = count
        start = (0..<count).map { _ in DispatchSemaphore(value: 0) }
        errors = [Error?](repeating: nil, count: count)
        for r in 0..<count {
            let t = Thread { [unowned self] in self.loop(r) }
            t.stackSize = stackSize
            t.name = "turing-rank-\(r)"
            threads.append(t)
            t.start()
        }
    }

    private func loop(_ r: Int) {
        while true {
            start[r].wait()
            if stopping { done.signal(); return }
            do { try job!(r) } catch {
                lock.lock(); errors[r] = error; lock.unlock()
                onError?(error)
            }
            done.signal()
        }
    }

    public func run(_ body: @escaping (Int) throws -> Void) throws {
        job = body
        for i in 0..<count { errors[i] = nil }
        for s in start { s.signal() }
        for _ in 0..<count { done.wait() }
        job = nil
        // report the cause, not the ranks that were merely released by the abort
        let all = errors.compactMap { $0 }
        if let e = all.first(where: { if case CollectiveError.aborted = $0 { return false }; return true }) ?? all.first { throw e }
    }

    deinit {
        stopping = true
        for s in start { s.signal() }
    }
}
