// DistributedEngine: a model run as the TP x PP ranks of a `ParallelLayout` (DP 1), one rank per MPI
// process (`mpirun -np TP*PP`).
//
// This process is world rank g, placed by the layout: stage p = g / TP, TP rank t = g % TP
// (ShardedEngine's mapping); it holds only its own shard (`DecoderWeights(ckpt, shard:)`) and its own
// KV cache. `forward` is SPMD: every process calls it with the same tokens (they read the same inputs
// and use the same seeds). Stage 0 embeds; a stage sends its [N, C] activations to the same TP index of the next
// stage (tag = micro-batch); the last stage computes logits gathered over its TP group; then the
// logits are broadcast from the last stage's TP rank 0 so every process returns the same tensor
// and samples identically. Micro-batches pipeline as in ShardedEngine. Results are bitwise equal
// to the in-process ShardedEngine at the same layout (both reduce in rank order).
// Errors: inputs are validated on every rank before any communication, so an invalid input throws
// the same error everywhere; any other error on one rank leaves the others waiting, so callers
// abort the job (`MPIRuntime.abort`); a rank that never arrives makes the others time out
// ($TURING_MPI_TIMEOUT; MPI_Comm_split at construction has no timeout).
// BLAS threads: the node's cores shared out over the node's ranks, max(1, cores / local ranks).

import Foundation
import TensorCore
import Collectives
import Model

public enum DistributedError: Error, CustomStringConvertible, Equatable {
    case processCount(processes: Int, tp: Int, pp: Int)

    public var description: String {
        switch self {
        case .processCount(let n, let tp, let pp):
            return "mpirun started \(n) processes but --tp \(tp) x --pp \(pp) needs \(tp * pp): run mpirun -np \(tp * pp)"
        }
    }
}

/// Per-sequence state of this process: its rank's `KVCache`.
public final class DistributedCache: SequenceCache {
    public let shard: KVCache
    init(shard: KVCache) { self.shard = shard }
    public var length: Int { shard.length }
    public var capacity: Int { shard.capacity }
    public func forked() throws -> SequenceCache { DistributedCache(shard: try shard.fork()) }
    public var rankCaches: [KVCache] { [shard] }
}

public final class DistributedEngine: CausalLM, CommunicationProbe {
    public let layout: ParallelLayout
    /// Most micro-batches a forward's sequences are cut into.
    public let microBatches: Int
    public let config: ModelConfig
    public let stage: Int, tpRank: Int, globalRank: Int
    let model: DecoderModel
    let world: MPICollective          // point-to-point between stages, logits broadcast
    let tp: MPICollective             // this stage's TP group

    /// Throws `DistributedError.processCount` unless the world has exactly TP x PP processes.
    public static func checkProcessCount(_ layout: ParallelLayout, worldSize: Int) throws {
        if worldSize != layout.tp * layout.pp { throw DistributedError.processCount(processes: worldSize, tp: layout.tp, pp: layout.pp) }
    }

    /// `microBatches`: most micro-batches a forward is cut into (nil: PP).
    public convenience init(_ ckpt: CanonicalCheckpoint, layout: ParallelLayout, microBatches: Int? = nil, dtype: ComputeDType = .float32,
                            world: MPICollective) throws {
        try self.init(config: ckpt.config, layout: layout, microBatches: microBatches, world: world) { try DecoderWeights(ckpt, shard: $0, dtype: dtype) }
    }

    /// From this process's own tensors as a loader cut them at the same layout
    /// (`CheckpointLoader.loadSplit(url, layout:)` with `LoadOptions.rank` = this world rank): no process
    /// holds more than its shard.
    public convenience init(config: ModelConfig, rankTensors: [String: Tensor], layout: ParallelLayout, microBatches: Int? = nil,
                            dtype: ComputeDType = .float32, world: MPICollective) throws {
        try self.init(config: config, layout: layout, microBatches: microBatches, world: world) {
            try DecoderWeights(config: config, rankTensors: rankTensors, shard: $0, dtype: dtype)
        }
    }

    private init(config c: ModelConfig, layout: ParallelLayout, microBatches: Int?, world: MPICollective, weights: (RankPlace) throws -> DecoderWeights) throws {
        try Self.checkProcessCount(layout, worldSize: world.size)
        try checkEngineLayout(layout, c)
        self.layout = layout; self.microBatches = microBatches ?? layout.pp; config = c; self.world = world
        let place = try layout.place(ofRank: world.rank, numLayers: c.numLayers)
        globalRank = world.rank; tpRank = place.tpRank; stage = place.stage
        model = DecoderModel(weights: try weights(place))
        tp = try world.split(color: stage, key: tpRank)
        // BLAS threads: the node's cores shared out over the ranks mpirun placed on it.
        let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? world.size
        Compute.setThreads(max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, local)))
        // Fault injection for scripts/test_mpi.sh: this rank stops answering, the others must time out.
        if ProcessInfo.processInfo.environment["TURING_MPI_TEST_STALL_RANK"].flatMap({ Int($0) }) == globalRank {
            while true { sleep(60) }
        }
    }

    /// Seconds spent inside MPI calls (TP collectives, stage sends/receives, logits broadcast),
    /// waiting for peers included.
    public var communicationSecondsTotal: Double { tp.seconds + world.seconds }
    public func resetCommunicationStatistics() { tp.resetStatistics(); world.resetStatistics() }
    /// Layers on this process's stage.
    public var localLayers: Int { model.weights.layers.count }

    public func makeSequenceCache(capacity: Int?) throws -> SequenceCache {
        DistributedCache(shard: try model.makeCache(capacity: capacity))
    }

    public func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor {
        let sc = try caches.rankCaches(ranks: 1).map { $0[0] }
        let PP = layout.pp, V = config.vocabSize
        // Validate on every rank, before any communication, so every rank throws the same error.
        try checkInputs(tokens, lengths: sc.map(\.length), capacities: sc.map(\.capacity), vocab: V)
        let parts = try runStage(model, rank: globalRank, layout: layout, tokens: tokens,
                                 micro: microBatchRanges(tokens.count, microBatches: microBatches), cache: { sc[$0] }, logits: logits, tp: tp, p2p: world)
        // Rows every rank expects, from the inputs alone (scores: 3 numbers a row, not the vocabulary).
        let rows = logits.rows(counts: tokens.map(\.count)), width = logits.width(vocab: V)
        var data: [Float]
        if stage == PP - 1 {
            data = parts.flatMap(\.data)
            precondition(data.count == rows * width, "last stage made \(data.count) values, expected \(rows) x \(width)")
        } else {
            data = [Float](repeating: 0, count: rows * width)
        }
        try data.withUnsafeMutableBufferPointer { try world.broadcast($0, root: layout.rank(tpRank: 0, stage: PP - 1)) }
        return Tensor(shape: [rows, width], data: data)
    }
}
