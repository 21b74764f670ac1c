// ShardedEngine: a model run the way Megatron runs it, as TP x PP ranks (in-process threads here).
//
// Rank (t, p) = global index p * TP + t holds stage p's layers and TP shard t (`DecoderWeights`
// cut by `ShardSpec`). Within a stage the TP ranks meet in their own `ThreadGroup`; stages pass
// [N, C] activations point-to-point to the same TP index of the next stage. A batch is cut into
// micro-batches of sequences that flow through the pipeline, so stage p works on micro-batch m
// while stage p+1 works on m-1. Each rank keeps the KV cache of its own layers and heads.
// BLAS threads: the machine's cores are shared out, max(1, cores / ranks) each.

import Foundation
import TensorCore
import Collectives
import Model

public struct EngineLayout: Sendable, Equatable, CustomStringConvertible {
    public var tp: Int, pp: Int
    public var layersPerStage: [Int]?
    public var microBatches: Int
    public init(tp: Int = 1, pp: Int = 1, layersPerStage: [Int]? = nil, microBatches: Int? = nil) {
        self.tp = tp; self.pp = pp; self.layersPerStage = layersPerStage; self.microBatches = microBatches ?? pp
    }
    public var description: String { "TP \(tp) x PP \(pp)" }
}

/// Per-sequence state across ranks: one `KVCache` per rank.
public final class ShardedCache: SequenceCache {
    public let shards: [KVCache]
    init(shards: [KVCache]) { self.shards = shards }
    public var length: Int { shards[0].length }
    public var capacity: Int { shards[0].capacity }
    public func forked() -> SequenceCache { ShardedCache(shards: shards.map { $0.fork() }) }
}

public final class ShardedEngine: CausalLM, CommunicationProbe {
    public let layout: EngineLayout
    public let config: ModelConfig
    let ranks: [DecoderModel]
    let tpGroups: [ThreadGroup]          // one per stage
    let p2p: ThreadGroup                 // all ranks, for point-to-point
    let tpMembers: [ThreadRank]
    let p2pMembers: [ThreadRank]
    let workers: RankWorkers

    public init(_ ckpt: CanonicalCheckpoint, layout: EngineLayout, timeout: Double = 120) throws {
        let c = ckpt.config
        try ShardSpec.checkTensorParallel(c, tp: layout.tp)
        let stages = try ShardSpec.stageLayers(numLayers: c.numLayers, pp: layout.pp, layersPerStage: layout.layersPerStage)
        self.layout = layout; config = c
        var models: [DecoderModel] = []
        for p in 0..<layout.pp { for t in 0..<layout.tp {
            let spec = ShardSpec(tp: layout.tp, tpRank: t, pp: layout.pp, stage: p, layers: stages[p])
            models.append(DecoderModel(weights: try DecoderWeights(ckpt, shard: spec)))
        } }
        ranks = models
        let groups = (0..<layout.pp).map { _ in ThreadGroup(size: layout.tp, timeout: timeout) }
        let all = ThreadGroup(size: layout.tp * layout.pp, timeout: timeout)
        tpGroups = groups; p2p = all
        tpMembers = (0..<(layout.tp * layout.pp)).map { i in groups[i / layout.tp].member(i % layout.tp) }
        p2pMembers = (0..<(layout.tp * layout.pp)).map { all.member($0) }
        workers = RankWorkers(count: layout.tp * layout.pp)
        workers.onError = { e in for g in groups + [all] { g.abort("a rank failed: \(e)") } }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreads(max(1, cores / (layout.tp * layout.pp)))
    }

    /// Rank 0's time inside collectives and point-to-point calls (waiting included), and its layers.
    public var communicationSecondsTotal: Double { tpMembers[0].seconds + p2pMembers[0].seconds }
    public func resetCommunicationStatistics() { for m in tpMembers + p2pMembers { m.resetStatistics() } }
    public var localLayers: Int { ranks[0].weights.layers.count }

    public func makeSequenceCache(capacity: Int?) -> SequenceCache {
        ShardedCache(shards: ranks.map { $0.makeCache(capacity: capacity) })
    }

    public func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor {
        let sc = caches.map { $0 as! ShardedCache }
        let TP = layout.tp, PP = layout.pp, C = config.hiddenSize
        for (s, toks) in tokens.enumerated() where sc[s].length + toks.count > sc[s].capacity {
            throw DecoderError(description: "sequence \(s): \(sc[s].length + toks.count) positions exceed the cache capacity \(sc[s].capacity)")
        }
        // micro-batches: contiguous runs of sequences
        let m = max(1, min(layout.microBatches, tokens.count))
        let per = (tokens.count + m - 1) / max(m, 1)
        let mbs: [Range<Int>] = stride(from: 0, to: tokens.count, by: max(per, 1)).map { $0..<min(tokens.count, $0 + per) }
        var results = [Tensor?](repeating: nil, count: mbs.count)
        let resultLock = NSLock()
        let ranks = self.ranks, tpm = tpMembers, p2pm = p2pMembers
        // A failing rank aborts the groups (the others throw instead of waiting); once every rank
        // has returned, the groups are reset so the engine stays usable.
        defer { for g in tpGroups + [p2p] { g.reset() } }
        try workers.run { i in
            let p = i / TP, t = i % TP
            let model = ranks[i]
            for (mi, mb) in mbs.enumerated() {
                let toks = Array(tokens[mb]), counts = toks.map(\.count)
                let cs = mb.map { sc[$0].shards[i] }
                let input: StageInput
                if p == 0 { input = .tokens(toks) } else {
                    var h = [Float](repeating: 0, count: counts.reduce(0, +) * C)
                    try h.withUnsafeMutableBufferPointer { try p2pm[i].recv($0, from: (p - 1) * TP + t, tag: mi) }
                    input = .hidden(h)
                }
                let out = try model.forwardStage(input, counts: counts, caches: cs, logits: logits.restricted(to: mb), tp: tpm[i])
                switch out {
                case .hidden(let h):
                    try h.withUnsafeBufferPointer { try p2pm[i].send($0, to: (p + 1) * TP + t, tag: mi) }
                case .logits(let l):
                    if t == 0 && p == PP - 1 { resultLock.lock(); results[mi] = l; resultLock.unlock() }
                }
            }
        }
        let parts = results.map { $0! }
        return Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }, logits.width(vocab: config.vocabSize)], data: parts.flatMap(\.data))
    }
}
