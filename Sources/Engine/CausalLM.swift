// CausalLM: what generation and scoring need from a model, whatever its layout: a config, a
// per-sequence cache the caller owns, and a stacked forward. `DecoderModel` (one rank, TP 1 x PP 1)
// and `ShardedEngine` (TP x PP ranks) both provide it.

import TensorCore
import Model

public protocol SequenceCache: AnyObject {
    var length: Int { get }
    var capacity: Int { get }
    /// A copy of the first `length` positions, to branch continuations from a shared context.
    func forked() -> SequenceCache
}

public protocol CausalLM {
    var config: ModelConfig { get }
    func makeSequenceCache(capacity: Int?) -> SequenceCache
    /// Appends `tokens[s]` to `caches[s]`; returns logits [rows, V] for the rows asked for.
    func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor
}

extension KVCache: SequenceCache {
    public func forked() -> SequenceCache { fork() }
}

extension DecoderModel: CausalLM {
    public func makeSequenceCache(capacity: Int?) -> SequenceCache { makeCache(capacity: capacity) }
    public func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor {
        try forward(tokens: tokens, caches: caches.map { $0 as! KVCache }, logits: logits)
    }
}
