// CausalLM: what generation and scoring need from a model, whatever its layout: a config, a
// per-sequence cache the caller owns, and a stacked forward. `DecoderModel` (one rank, TP 1 x PP 1)
// and `ShardedEngine` (TP x PP ranks) both provide it. A cache reaches the engine as what it is
// everywhere: one `KVCache` per rank of the engine that made it (`rankCaches`), so no engine casts.

import TensorCore
import Model

public protocol SequenceCache: AnyObject {
    var length: Int { get }
    var capacity: Int { get }
    /// A copy of the first `length` positions, to branch continuations from a shared context.
    func forked() throws -> SequenceCache
    /// This sequence's KV cache on each in-process rank of the engine that made it, in rank order
    /// (one for a single rank or an MPI process).
    var rankCaches: [KVCache] { get }
}

/// A cache given to an engine that did not make it (another layout's).
public struct CacheMismatch: Error, CustomStringConvertible {
    public let sequence: Int, found: Int, expected: Int
    public var description: String {
        "sequence \(sequence): its cache holds \(found) rank cache(s), this engine runs \(expected) rank(s) (a cache made by another engine?)"
    }
}

extension Array where Element == SequenceCache {
    /// Each sequence's per-rank caches, checked against the engine's `ranks`.
    func rankCaches(ranks: Int) throws -> [[KVCache]] {
        try enumerated().map { s, c in
            let r = c.rankCaches
            guard r.count == ranks else { throw CacheMismatch(sequence: s, found: r.count, expected: ranks) }
            return r
        }
    }
}

public protocol CausalLM {
    var config: ModelConfig { get }
    /// Throws when the system has no memory for it (`DecoderError`).
    func makeSequenceCache(capacity: Int?) throws -> SequenceCache
    /// Appends `tokens[s]` to `caches[s]`; returns logits [rows, V] for the rows asked for.
    func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor
}

extension KVCache: SequenceCache {
    public func forked() throws -> SequenceCache { try fork() }
    public var rankCaches: [KVCache] { [self] }
}

extension DecoderModel: CausalLM {
    public func makeSequenceCache(capacity: Int?) throws -> SequenceCache { try makeCache(capacity: capacity) }
    public func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor {
        try forward(tokens: tokens, caches: caches.rankCaches(ranks: 1).map { $0[0] }, logits: logits)
    }
}
