// PipelineStage: what every rank of a TP x PP engine does in one forward, shared by the in-process
// `ShardedEngine` and the MPI `DistributedEngine`: check the inputs (the same on every rank, before
// any communication), cut the batch into micro-batches of sequences, and for each micro-batch take
// the tokens (stage 0) or receive the previous stage's activations, run this rank's stage, and send
// the activations on. The last stage's outputs come back per micro-batch.

import TensorCore
import Collectives
import Model

/// Contiguous runs of `n` sequences, at most `microBatches` of them.
func microBatchRanges(_ n: Int, microBatches: Int) -> [Range<Int>] {
    let m = max(1, min(microBatches, n))
    let per = max(1, (n + m - 1) / m)
    return stride(from: 0, to: n, by: per).map { $0..<min(n, $0 + per) }
}

/// The engines run one replica: DP 1 (the TP divisibility and stage checks are `ParallelLayout.check`'s).
func checkEngineLayout(_ layout: ParallelLayout, _ c: ModelConfig) throws {
    guard layout.dp == 1 else { throw LayoutError("an engine runs one replica; got \(layout), expected DP 1") }
    try layout.check(c)
}

/// Capacity checks, and vocabulary checks when `vocab` is given, for a forward: identical on every
/// rank. (In-process ranks leave token ids to stage 0, whose failure releases the other ranks; MPI
/// processes check them all up front, since a failed process aborts the job.)
func checkInputs(_ tokens: [[Int]], lengths: [Int], capacities: [Int], vocab: Int?) throws {
    precondition(tokens.count == lengths.count, "\(tokens.count) sequences but \(lengths.count) caches")
    for (s, toks) in tokens.enumerated() {
        if lengths[s] + toks.count > capacities[s] {
            throw DecoderError(description: "sequence \(s): \(lengths[s] + toks.count) positions exceed the cache capacity \(capacities[s])")
        }
        if let V = vocab { for t in toks where t < 0 || t >= V {
            throw DecoderError(description: "sequence \(s): token id \(t) is outside the vocabulary [0, \(V))")
        } }
    }
}

/// World rank `rank` of `layout` (`layout.coordinates(ofRank:)`: stage rank / TP, TP rank rank % TP) runs
/// its stage over every micro-batch; `cache(s)` is this rank's cache of sequence s. Returns the last
/// stage's outputs (else empty).
func runStage(_ model: DecoderModel, rank: Int, layout: ParallelLayout, tokens: [[Int]], micro: [Range<Int>],
              cache: (Int) -> KVCache, logits: LogitRows, tp: Collective, p2p: PointToPoint) throws -> [Tensor] {
    let (t, p, _) = layout.coordinates(ofRank: rank), C = model.config.hiddenSize
    var parts: [Tensor] = []
    for (mi, mb) in micro.enumerated() {
        let toks = Array(tokens[mb]), counts = toks.map(\.count)
        let input: StageInput
        if p == 0 { input = .tokens(toks) } else {
            var h = [Float](repeating: 0, count: counts.reduce(0, +) * C)
            try h.withUnsafeMutableBufferPointer { try p2p.recv($0, from: layout.rank(tpRank: t, stage: p - 1), tag: mi) }
            input = .hidden(h)
        }
        switch try model.forwardStage(input, counts: counts, caches: mb.map(cache), logits: logits.restricted(to: mb), tp: tp) {
        case .hidden(let h): try h.withUnsafeBufferPointer { try p2p.send($0, to: layout.rank(tpRank: t, stage: p + 1), tag: mi) }
        case .logits(let l): parts.append(l)
        }
    }
    return parts
}
