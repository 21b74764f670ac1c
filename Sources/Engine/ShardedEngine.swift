// ShardedEngine: a model run the way Megatron runs it, as the TP x PP ranks of a `ParallelLayout`
// (DP 1; in-process threads here).
//
// Rank (t, p) = global index p * TP + t holds stage p's layers and TP shard t (`DecoderWeights`
// cut for its `RankPlace`, vocabulary padded by the layout's policy). Within a stage the TP ranks
// meet in their own `ThreadGroup`; stages pass [N, C] activations point-to-point to the same TP index
// of the next stage. A batch is cut into at most `microBatches` micro-batches of sequences (the
// engine's own setting, PP by default) that flow through the pipeline, so stage p works on
// micro-batch m while stage p+1 works on m-1. Each rank keeps the KV cache of its own layers and heads.
// BLAS threads: the machine's cores are shared out, max(1, cores / ranks) each.

import Foundation
import TensorCore
import Collectives
import Model

/// Per-sequence state across ranks: one `KVCache` per rank.
public final class ShardedCache: SequenceCache {
    public let shards: [KVCache]
    init(shards: [KVCache]) { self.shards = shards }
    public var length: Int { shards[0].length }
    public var capacity: Int { shards[0].capacity }
    public func forked() throws -> SequenceCache { ShardedCache(shards: try shards.map { try $0.fork() }) }
    public var rankCaches: [KVCache] { shards }
}

public final class ShardedEngine: CausalLM, CommunicationProbe {
    public let layout: ParallelLayout
    /// Most micro-batches a forward's sequences are cut into.
    public let microBatches: Int
    public let config: ModelConfig
    let ranks: [DecoderModel]
    let tpGroups: [ThreadGroup]          // one per stage
    let p2p: ThreadGroup                 // all ranks, for point-to-point
    let tpMembers: [ThreadRank]
    let p2pMembers: [ThreadRank]
    let workers: RankWorkers

    /// `microBatches`: most micro-batches a forward is cut into (nil: PP).
    public convenience init(_ ckpt: CanonicalCheckpoint, layout: ParallelLayout, microBatches: Int? = nil, dtype: ComputeDType = .float32,
                            timeout: Double = 120) throws {
        try self.init(config: ckpt.config, layout: layout, microBatches: microBatches, timeout: timeout) { try DecoderWeights(ckpt, shard: $0, dtype: dtype) }
    }

    /// From every TP rank's tensors as a loader cut them at the same layout (`rankTensors[t]`, all
    /// layers: `CheckpointLoader.loadSplit(url, layout:)`): no canonical copy of the model is ever
    /// held; the stages of one TP rank share its tensors.
    public convenience init(config: ModelConfig, rankTensors: [[String: Tensor]], layout: ParallelLayout, microBatches: Int? = nil,
                            dtype: ComputeDType = .float32, timeout: Double = 120) throws {
        guard rankTensors.count == layout.tp else {
            throw LayoutError("\(rankTensors.count) TP ranks of tensors for an engine at TP \(layout.tp)")
        }
        try self.init(config: config, layout: layout, microBatches: microBatches, timeout: timeout) {
            try DecoderWeights(config: config, rankTensors: rankTensors[$0.tpRank], shard: $0, dtype: dtype)
        }
    }

    private init(config c: ModelConfig, layout: ParallelLayout, microBatches: Int?, timeout: Double, weights: (RankPlace) throws -> DecoderWeights) throws {
        try checkEngineLayout(layout, c)
        self.layout = layout; self.microBatches = microBatches ?? layout.pp; config = c
        var models: [DecoderModel] = []
        for g in 0..<layout.worldSize {     // g = p * TP + t
            models.append(DecoderModel(weights: try weights(try layout.place(ofRank: g, numLayers: c.numLayers))))
        }
        ranks = models
        let groups = (0..<layout.pp).map { _ in ThreadGroup(size: layout.tp, timeout: timeout) }
        let all = ThreadGroup(size: layout.tp * layout.pp, timeout: timeout)
        tpGroups = groups; p2p = all
        tpMembers = (0..<(layout.tp * layout.pp)).map { i in groups[i / layout.tp].member(i % layout.tp) }
        p2pMembers = (0..<(layout.tp * layout.pp)).map { all.member($0) }
        workers = RankWorkers(count: layout.tp * layout.pp)
        workers.onError = { e in for g in groups + [all] { g.abort("a rank failed: \(e)") } }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        Compute.setThreads(max(1, cores / (layout.tp * layout.pp)))
    }

    /// Rank 0's time inside collectives and point-to-point calls (waiting included), and its layers.
    public var communicationSecondsTotal: Double { tpMembers[0].seconds + p2pMembers[0].seconds }
    public func resetCommunicationStatistics() { for m in tpMembers + p2pMembers { m.resetStatistics() } }
    public var localLayers: Int { ranks[0].weights.layers.count }

    public func makeSequenceCache(capacity: Int?) throws -> SequenceCache {
        ShardedCache(shards: try ranks.map { try $0.makeCache(capacity: capacity) })
    }

    public func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor {
        let sc = try caches.rankCaches(ranks: ranks.count)
        try checkInputs(tokens, lengths: caches.map(\.length), capacities: caches.map(\.capacity), vocab: nil)
        let mbs = microBatchRanges(tokens.count, microBatches: microBatches)
        var results: [Tensor] = []
        let resultLock = NSLock()
        let ranks = self.ranks, tpm = tpMembers, p2pm = p2pMembers, layout = self.layout
        let reporter = (layout.pp - 1) * layout.tp          // last stage, TP rank 0
        // A failing rank aborts the groups (the others throw instead of waiting); once every rank
        // has returned, the groups are reset so the engine stays usable.
        defer { for g in tpGroups + [p2p] { g.reset() } }
        try workers.run { i in
            let parts = try runStage(ranks[i], rank: i, layout: layout, tokens: tokens, micro: mbs,
                                     cache: { sc[$0][i] }, logits: logits, tp: tpm[i], p2p: p2pm[i])
            if i == reporter { resultLock.lock(); results = parts; resultLock.unlock() }
        }
        let parts = results
        return Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }, logits.width(vocab: config.vocabSize)], data: parts.flatMap(\.data))
    }
}
