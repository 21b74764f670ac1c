// MPICollective: `Collective` and `PointToPoint` over an MPI communicator (one rank per process).
//
// Same contract as `ThreadRank`: allReduce sums in rank order (it is an allgather followed by a
// local sum r0 + r1 + ..., because MPI_Allreduce does not fix its reduction order), so results are
// identical on every rank and bitwise equal to the in-process `ThreadGroup`. Every operation is
// polled with a deadline (`timeout` seconds): a rank that never arrives makes the others throw
// `CollectiveError.timeout` instead of hanging; the CLI then aborts the job (`MPIRuntime.abort`).
// Peers are ranks of this communicator. Sizes of collective buffers are not exchanged: every rank
// must pass the same count (as SPMD code does); receives check the message size.
// `seconds` accumulates the wall time spent inside this communicator's calls (for benchmarks).

import Foundation
import CMPIShim

public final class MPICollective: Collective, PointToPoint {
    let comm: UnsafeMutableRawPointer
    public let rank: Int
    public let size: Int
    public let timeout: Double
    public private(set) var seconds: Double = 0
    public private(set) var calls: Int = 0
    public func resetStatistics() { seconds = 0; calls = 0 }
    let tagLimit: Int
    var scratch: [Float] = []

    /// The world communicator (MPI must be initialised).
    public static func world(timeout: Double = MPIRuntime.defaultTimeout) throws -> MPICollective {
        guard MPIRuntime.isActive else { throw CollectiveError.mpi(operation: "world", message: "MPI is not initialised (not started by mpirun?)") }
        var h: UnsafeMutableRawPointer?
        try check("MPI_COMM_WORLD", tmpi_comm_world(&h))
        return try MPICollective(comm: h!, timeout: timeout)
    }

    init(comm: UnsafeMutableRawPointer, timeout: Double) throws {
        self.comm = comm; self.timeout = timeout
        var r: Int32 = 0, s: Int32 = 0
        try Self.check("MPI_Comm_rank", tmpi_comm_rank(comm, &r))
        try Self.check("MPI_Comm_size", tmpi_comm_size(comm, &s))
        rank = Int(r); size = Int(s)
        tagLimit = Int(tmpi_tag_ub())
    }

    deinit { _ = tmpi_comm_free(comm) }

    /// MPI_Comm_split: the ranks passing the same `color` form a new communicator, ordered by `key`.
    /// Collective over this communicator.
    public func split(color: Int, key: Int) throws -> MPICollective {
        var h: UnsafeMutableRawPointer?
        try Self.check("MPI_Comm_split", tmpi_comm_split(comm, Int32(color), Int32(key), &h))
        return try MPICollective(comm: h!, timeout: timeout)
    }

    static func check(_ op: String, _ rc: Int32) throws {
        if rc != 0 { throw CollectiveError.mpi(operation: op, message: MPIRuntime.errorString(rc)) }
    }

    private func timed(_ op: String, peers: [Int], _ body: () -> Int32) throws {
        let t0 = monotonicSeconds()
        let rc = body()
        seconds += monotonicSeconds() - t0; calls += 1
        if rc == TMPI_ERR_TIMEOUT { throw CollectiveError.timeout(operation: op, missing: peers, seconds: timeout) }
        try Self.check(op, rc)
    }

    private func count(_ op: String, _ n: Int) throws -> Int32 {
        guard n <= Int(Int32.max) else { throw CollectiveError.mpi(operation: op, message: "\(n) elements exceed MPI's Int32 count") }
        return Int32(n)
    }

    private var others: [Int] { (0..<size).filter { $0 != rank } }

    public func allReduce(_ buf: UnsafeMutableBufferPointer<Float>) throws {
        if size == 1 || buf.isEmpty { return }
        let n = buf.count
        if scratch.count < n * size { scratch = [Float](repeating: 0, count: n * size) }
        _ = try count("allReduce", n * size)
        try scratch.withUnsafeMutableBufferPointer { all in
            try timed("allReduce", peers: others) { tmpi_allgather_f32(comm, buf.baseAddress!, Int32(n), all.baseAddress!, timeout) }
        }
        scratch.withUnsafeBufferPointer { all in
            let a = all.baseAddress!, out = buf.baseAddress!
            out.update(from: a, count: n)
            for r in 1..<size {
                let pr = a + r * n
                for i in 0..<n { out[i] += pr[i] }
            }
        }
    }

    public func allGather(_ send: UnsafeBufferPointer<Float>, into recv: UnsafeMutableBufferPointer<Float>) throws {
        guard recv.count == send.count * size else {
            throw CollectiveError.sizeMismatch(operation: "allGather", rank: rank, expected: send.count * size, found: recv.count)
        }
        if send.isEmpty { return }
        let n = try count("allGather", recv.count) / Int32(size)
        try timed("allGather", peers: others) { tmpi_allgather_f32(comm, send.baseAddress!, n, recv.baseAddress!, timeout) }
    }

    public func broadcast(_ buf: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        if size == 1 || buf.isEmpty { return }
        let n = try count("broadcast", buf.count)
        try timed("broadcast", peers: [root]) { tmpi_bcast_f32(comm, buf.baseAddress!, n, Int32(root), timeout) }
    }

    public func barrier() throws {
        if size == 1 { return }
        try timed("barrier", peers: others) { tmpi_barrier(comm, timeout) }
    }

    private func checkTag(_ op: String, _ tag: Int) throws {
        guard tag >= 0 && tag <= tagLimit else { throw CollectiveError.mpi(operation: op, message: "tag \(tag) outside MPI's range 0...\(tagLimit)") }
    }

    public func send(_ buf: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws {
        try checkTag("send", tag)
        let n = try count("send", buf.count)
        try timed("send", peers: [peer]) { tmpi_send_f32(comm, buf.baseAddress, n, Int32(peer), Int32(tag), timeout) }
    }

    /// Started sends: the request and the copy of the data it reads from.
    var pending: [(request: UnsafeMutableRawPointer, data: UnsafeMutableBufferPointer<Float>, peer: Int)] = []

    public func sendAsync(_ data: [Float], to peer: Int, tag: Int) throws {
        try checkTag("send", tag)
        let n = try count("send", data.count)
        let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, data.count))
        _ = copy.initialize(from: data)
        var req: UnsafeMutableRawPointer?
        let rc = tmpi_isend_f32(comm, copy.baseAddress, n, Int32(peer), Int32(tag), &req)
        if rc != 0 { copy.deallocate(); try Self.check("isend", rc) }
        pending.append((req!, copy, peer))
    }

    public func completeSends() throws {
        while let p = pending.first {
            let t0 = monotonicSeconds()
            let rc = tmpi_wait_request(p.request, timeout)
            seconds += monotonicSeconds() - t0; calls += 1
            if rc == TMPI_ERR_TIMEOUT { throw CollectiveError.timeout(operation: "send", missing: [p.peer], seconds: timeout) }
            try Self.check("send", rc)
            p.data.deallocate()
            pending.removeFirst()
        }
    }

    public func recv(_ buf: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws {
        try checkTag("recv", tag)
        let n = try count("recv", buf.count)
        var got: Int32 = 0
        let t0 = monotonicSeconds()
        let rc = tmpi_recv_f32(comm, buf.baseAddress, n, Int32(peer), Int32(tag), &got, timeout)
        seconds += monotonicSeconds() - t0; calls += 1
        if rc == TMPI_ERR_TIMEOUT { throw CollectiveError.timeout(operation: "recv", missing: [peer], seconds: timeout) }
        if rc == TMPI_ERR_TRUNCATE { throw CollectiveError.sizeMismatch(operation: "recv", rank: peer, expected: buf.count, found: Int(got)) }
        try Self.check("recv", rc)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
