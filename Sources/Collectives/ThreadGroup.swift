// ThreadGroup: in-process ranks as threads over shared memory (the default backend).
//
// A `ThreadGroup` is the shared rendezvous of `size` ranks; `member(rank)` is the `Collective` one
// rank's thread uses. Each operation publishes the rank's pointer, waits at a generation barrier,
// reads the peers' data directly (sums in rank order), then waits again so no buffer is reused
// early. A rank that does not arrive within `timeout` makes the others throw, naming it.

import Foundation
import Synchronization

public final class ThreadGroup: @unchecked Sendable {
    public let size: Int
    public let timeout: Double
    let cond = NSCondition()                 // guards `failed` and the mailboxes
    let arrived = Atomic<Int>(0)
    let generation = Atomic<Int>(0)
    let failedFlag = Atomic<Bool>(false)
    let arrivedGen: UnsafeMutablePointer<Int>   // per rank: the generation it last arrived for (diagnostics)
    var pointers: [UnsafeMutableRawPointer?]
    var counts: [Int]
    var failed: String? = nil
    // point-to-point mailboxes: (from, to, tag) -> data
    var mail: [Int: [Float]] = [:]

    public init(size: Int, timeout: Double = 120) {
        precondition(size >= 1)
        self.size = size; self.timeout = timeout
        arrivedGen = .allocate(capacity: size)
        arrivedGen.initialize(repeating: 0, count: size)
        pointers = [UnsafeMutableRawPointer?](repeating: nil, count: size)
        counts = [Int](repeating: 0, count: size)
    }

    deinit { arrivedGen.deallocate() }

    public func member(_ rank: Int) -> ThreadRank { ThreadRank(group: self, rank: rank) }

    /// Mark the group failed so every waiting rank throws instead of hanging.
    public func abort(_ reason: String) {
        cond.lock(); failed = reason; failedFlag.store(true, ordering: .releasing); cond.broadcast(); cond.unlock()
    }

    /// After every rank has returned from a failed operation: forget the failure and any stale state.
    public func reset() {
        cond.lock()
        failed = nil; failedFlag.store(false, ordering: .releasing)
        arrived.store(0, ordering: .releasing)
        let g = generation.add(1, ordering: .acquiringAndReleasing).newValue
        for i in 0..<size { arrivedGen[i] = g; pointers[i] = nil; counts[i] = 0 }
        mail.removeAll()
        cond.unlock()
    }

    private func failure() -> String { cond.lock(); defer { cond.unlock() }; return failed ?? "aborted" }

    /// Generation barrier. Waiting spins briefly (ranks usually arrive within microseconds of each
    /// other when each has its own core), then yields, then sleeps, so oversubscribed ranks do not
    /// starve the ones still working.
    func rendezvous(_ op: String, rank: Int) throws {
        if failedFlag.load(ordering: .acquiring) { throw CollectiveError.aborted(reason: failure()) }
        let gen = generation.load(ordering: .acquiring)
        arrivedGen[rank] = gen + 1
        if arrived.add(1, ordering: .acquiringAndReleasing).newValue == size {
            arrived.store(0, ordering: .releasing)
            generation.store(gen + 1, ordering: .releasing)
            return
        }
        var spins = 0
        var deadline: Date? = nil
        while generation.load(ordering: .acquiring) == gen {
            spins += 1
            if spins < 4000 { continue }
            if failedFlag.load(ordering: .acquiring) { throw CollectiveError.aborted(reason: failure()) }
            if spins < 8000 { sched_yield(); continue }
            usleep(spins < 20000 ? 20 : 200)
            if deadline == nil { deadline = Date(timeIntervalSinceNow: timeout) }
            if Date() > deadline! && generation.load(ordering: .acquiring) == gen {
                let missing = (0..<size).filter { arrivedGen[$0] != gen + 1 }
                abort("\(op) timed out waiting for rank(s) \(missing)")
                throw CollectiveError.timeout(operation: op, missing: missing, seconds: timeout)
            }
        }
    }
}

public final class ThreadRank: Collective, PointToPoint, @unchecked Sendable {
    public let group: ThreadGroup
    public let rank: Int
    public var size: Int { group.size }
    var scratch: [Float] = []
    /// Wall time inside this member's operations, waiting included (read when the rank is idle).
    public private(set) var seconds: Double = 0
    public func resetStatistics() { seconds = 0 }

    init(group: ThreadGroup, rank: Int) { self.group = group; self.rank = rank }

    private func timed(_ body: () throws -> Void) rethrows {
        let t0 = monotonicSeconds()
        defer { seconds += monotonicSeconds() - t0 }
        try body()
    }

    private func publish(_ p: UnsafeMutableRawPointer?, count: Int) {
        group.cond.lock(); group.pointers[rank] = p; group.counts[rank] = count; group.cond.unlock()
    }

    private func checkCounts(_ op: String, _ expected: Int) throws {
        for r in 0..<size where group.counts[r] != expected {
            throw CollectiveError.sizeMismatch(operation: op, rank: r, expected: expected, found: group.counts[r])
        }
    }

    public func allReduce(_ buf: UnsafeMutableBufferPointer<Float>) throws { try timed { try _allReduce(buf) } }
    private func _allReduce(_ buf: UnsafeMutableBufferPointer<Float>) throws {
        if size == 1 { return }
        publish(UnsafeMutableRawPointer(buf.baseAddress), count: buf.count)
        try group.rendezvous("allReduce", rank: rank)
        try checkCounts("allReduce", buf.count)
        let n = buf.count
        if scratch.count < n { scratch = [Float](repeating: 0, count: n) }
        scratch.withUnsafeMutableBufferPointer { s in
            let out = s.baseAddress!
            let p0 = group.pointers[0]!.assumingMemoryBound(to: Float.self)
            out.update(from: p0, count: n)
            for r in 1..<size {
                let pr = group.pointers[r]!.assumingMemoryBound(to: Float.self)
                for i in 0..<n { out[i] += pr[i] }
            }
        }
        try group.rendezvous("allReduce", rank: rank)    // everyone has read every input
        scratch.withUnsafeBufferPointer { s in buf.baseAddress!.update(from: s.baseAddress!, count: n) }
    }

    public func allGather(_ send: UnsafeBufferPointer<Float>, into recv: UnsafeMutableBufferPointer<Float>) throws { try timed { try _allGather(send, into: recv) } }
    private func _allGather(_ send: UnsafeBufferPointer<Float>, into recv: UnsafeMutableBufferPointer<Float>) throws {
        guard recv.count == send.count * size else {
            throw CollectiveError.sizeMismatch(operation: "allGather", rank: rank, expected: send.count * size, found: recv.count)
        }
        publish(UnsafeMutableRawPointer(mutating: send.baseAddress), count: send.count)
        try group.rendezvous("allGather", rank: rank)
        try checkCounts("allGather", send.count)
        for r in 0..<size where send.count > 0 {
            let pr = group.pointers[r]!.assumingMemoryBound(to: Float.self)
            (recv.baseAddress! + r * send.count).update(from: pr, count: send.count)
        }
        try group.rendezvous("allGather", rank: rank)
    }

    public func broadcast(_ buf: UnsafeMutableBufferPointer<Float>, root: Int) throws { try timed { try _broadcast(buf, root: root) } }
    private func _broadcast(_ buf: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        publish(UnsafeMutableRawPointer(buf.baseAddress), count: buf.count)
        try group.rendezvous("broadcast", rank: rank)
        try checkCounts("broadcast", buf.count)
        if rank != root && buf.count > 0 {
            buf.baseAddress!.update(from: group.pointers[root]!.assumingMemoryBound(to: Float.self), count: buf.count)
        }
        try group.rendezvous("broadcast", rank: rank)
    }

    public func barrier() throws { try group.rendezvous("barrier", rank: rank) }

    // MARK: - point to point (mailbox; send does not wait for the receiver)

    private func key(_ from: Int, _ to: Int, _ tag: Int) -> Int { (tag * 4096 + from) * 4096 + to }

    public func send(_ buf: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws { try timed { try _send(buf, to: peer, tag: tag) } }
    private func _send(_ buf: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws {
        group.cond.lock(); defer { group.cond.unlock() }
        let k = key(rank, peer, tag)
        let deadline = Date(timeIntervalSinceNow: group.timeout)
        while group.mail[k] != nil {   // previous message not yet taken
            if let f = group.failed { throw CollectiveError.aborted(reason: f) }
            if !group.cond.wait(until: deadline) { throw CollectiveError.timeout(operation: "send", missing: [peer], seconds: group.timeout) }
        }
        group.mail[k] = Array(buf)
        group.cond.broadcast()
    }

    /// The mailbox already copies: a send returns once the message is posted.
    public func sendAsync(_ data: [Float], to peer: Int, tag: Int) throws { try data.withUnsafeBufferPointer { try send($0, to: peer, tag: tag) } }
    public func completeSends() throws {}

    public func recv(_ buf: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws { try timed { try _recv(buf, from: peer, tag: tag) } }
    private func _recv(_ buf: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws {
        group.cond.lock(); defer { group.cond.unlock() }
        let k = key(peer, rank, tag)
        let deadline = Date(timeIntervalSinceNow: group.timeout)
        while group.mail[k] == nil {
            if let f = group.failed { throw CollectiveError.aborted(reason: f) }
            if !group.cond.wait(until: deadline) { throw CollectiveError.timeout(operation: "recv", missing: [peer], seconds: group.timeout) }
        }
        let m = group.mail.removeValue(forKey: k)!
        guard m.count == buf.count else { throw CollectiveError.sizeMismatch(operation: "recv", rank: peer, expected: buf.count, found: m.count) }
        m.withUnsafeBufferPointer { buf.baseAddress!.update(from: $0.baseAddress!, count: m.count) }
        group.cond.broadcast()
    }
}
