// Collective: how ranks talk. A value passed into model code (never a global), one per group.
//
// Owns: the protocol, `SingleRank`, and the error type. Every reduction sums in rank order, so a
// layout's results are identical run to run. Operations block until every rank of the group has
// arrived, or throw `CollectiveError.timeout` naming the ranks that did not.

public enum CollectiveError: Error, CustomStringConvertible, Equatable {
    case timeout(operation: String, missing: [Int], seconds: Double)
    case sizeMismatch(operation: String, rank: Int, expected: Int, found: Int)
    case aborted(reason: String)
    case mpi(operation: String, message: String)

    public var description: String {
        switch self {
        case .timeout(let op, let m, let s): return "collective \(op): rank(s) \(m) did not arrive within \(Int(s)) s (dead or hung rank?)"
        case .sizeMismatch(let op, let r, let e, let f): return "collective \(op): rank \(r) sent \(f) elements, expected \(e)"
        case .aborted(let r): return "collective aborted: \(r)"
        case .mpi(let op, let m): return "MPI \(op): \(m)"
        }
    }
}

public protocol Collective: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// buf = sum over ranks of buf (rank order).
    func allReduce(_ buf: UnsafeMutableBufferPointer<Float>) throws
    /// recv[r * send.count ..< (r+1) * send.count] = send of rank r.
    func allGather(_ send: UnsafeBufferPointer<Float>, into recv: UnsafeMutableBufferPointer<Float>) throws
    /// buf = buf of `root`.
    func broadcast(_ buf: UnsafeMutableBufferPointer<Float>, root: Int) throws
    func barrier() throws
}

/// Point-to-point between pipeline stages.
public protocol PointToPoint: AnyObject {
    func send(_ buf: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws
    func recv(_ buf: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws
    /// Start a send and return at once (the data is copied); `completeSends` waits for every
    /// started send. A pipeline schedule in which neighbours send to each other at the same time
    /// (1F1B) needs this: two blocking sends would wait for each other.
    func sendAsync(_ data: [Float], to peer: Int, tag: Int) throws
    func completeSends() throws
}

/// A group of one: every operation is the identity.
public final class SingleRank: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduce(_ buf: UnsafeMutableBufferPointer<Float>) throws {}
    public func allGather(_ send: UnsafeBufferPointer<Float>, into recv: UnsafeMutableBufferPointer<Float>) throws {
        guard recv.count == send.count else { throw CollectiveError.sizeMismatch(operation: "allGather", rank: 0, expected: send.count, found: recv.count) }
        if send.count > 0 { recv.baseAddress!.update(from: send.baseAddress!, count: send.count) }
    }
    public func broadcast(_ buf: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    public func barrier() throws {}
}
