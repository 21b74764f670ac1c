// ParallelTraining: runs the RankTrainers of a `ParallelLayout` (TP x PP x DP), in-process (one
// thread per rank, `ThreadGroup`s for the TP, DP and world groups: the default) or as this process's
// single rank under mpirun (`MPITraining`, MPI communicators split from the world). Both take the run's state
// in canonical form (`TrainerState`: whole-model flat parameters and Adam moments), cut it for
// their ranks, and give it back in canonical form for saves and evaluations; a state saved at one
// layout therefore resumes at any other.

import Foundation
import TensorCore
import Collectives
import Model

public protocol TrainingExecutor: AnyObject {
    var grid: ParallelLayout { get }
    /// Cut `state` into the ranks' buffers.
    func load(_ state: TrainerState) throws
    /// One optimizer step over the global batch's micro-batches; the same (loss, norm) everywhere.
    func step(micro: [TrainingBatch], lr: Float, clip: Float) throws -> (loss: Float, norm: Float)
    /// Whole-model parameters and moments into `state` (over MPI: on world rank 0; every rank must call it).
    func export(into state: inout TrainerState) throws
    /// One per-rank buffer (`\.params`, `\.grads`, ...) of replica 0 put together in `canonical`'s
    /// layout; nil on every process but world rank 0 (every rank must call it).
    func gather(_ pick: (RankTrainer) -> [Float], canonical: ParameterLayout) throws -> [Float]?
    /// Peak micro-batches whose activations one rank held in the last step, per world rank.
    var peakInFlight: [Int] { get }
    /// Optimizer steps taken (every rank has the same count).
    var adamStep: Int { get }
}

extension TrainingExecutor {
    public func export(into state: inout TrainerState) throws {
        let canon = state.adam.layout
        let p = try gather(\.params, canonical: canon), m = try gather(\.adam.m, canonical: canon), v = try gather(\.adam.v, canonical: canon)
        guard let p, let m, let v else { return }
        state.params = p; state.adam.m = m; state.adam.v = v
        state.adam.step = adamStep
    }

    func load(_ state: TrainerState, into r: RankTrainer) {
        let c = r.model.config, canon = state.adam.layout, local = r.model.layout, t = r.place.tpRank
        r.params = grid.scatter(state.params, canonical: canon, config: c, into: local, t: t)
        r.adam = AdamW(layout: local, config: state.adam.config, m: grid.scatter(state.adam.m, canonical: canon, config: c, into: local, t: t),
                       v: grid.scatter(state.adam.v, canonical: canon, config: c, into: local, t: t), step: state.adam.step)
    }
}

public final class InProcessTraining: TrainingExecutor {
    public let grid: ParallelLayout
    public let ranks: [RankTrainer]
    let groups: [ThreadGroup]
    let workers: RankWorkers

    public init(config: ModelConfig, grid: ParallelLayout = .init(), recompute: Bool = false, timeout: Double = 300) throws {
        self.grid = grid
        try checkTrainingLayout(grid, config)
        let W = grid.worldSize, TP = grid.tp, DP = grid.dp, PP = grid.pp
        let world = ThreadGroup(size: W, timeout: timeout)
        let tpGroups = (0..<(PP * DP)).map { _ in ThreadGroup(size: TP, timeout: timeout) }      // by (p, d)
        let dpGroups = (0..<(PP * TP)).map { _ in ThreadGroup(size: DP, timeout: timeout) }      // by (p, t)
        groups = [world] + tpGroups + dpGroups
        var rs: [RankTrainer] = []
        for g in 0..<W {
            let (t, p, d) = grid.coordinates(ofRank: g)
            let r = try Self.make(config, g, grid: grid, tp: tpGroups[p * DP + d].member(t), dp: dpGroups[p * TP + t].member(d), world: world.member(g))
            r.recompute = recompute
            rs.append(r)
        }
        ranks = rs
        workers = RankWorkers(count: W)
        let all = groups
        workers.onError = { e in for g in all { g.abort("a rank failed: \(e)") } }
        if W > 1 { Compute.setThreads(max(1, ProcessInfo.processInfo.activeProcessorCount / W)) }
    }

    static func make(_ config: ModelConfig, _ g: Int, grid: ParallelLayout, tp: Collective, dp: Collective, world: Collective & PointToPoint) throws -> RankTrainer {
        let model = try StageTraining(config: config, place: try grid.place(ofRank: g, numLayers: config.numLayers))
        return RankTrainer(model: model, params: [Float](repeating: 0, count: model.layout.total),
                           adam: AdamW(layout: model.layout), tp: tp, dp: dp, world: world)
    }

    public func load(_ state: TrainerState) throws { for r in ranks { load(state, into: r) } }

    public func step(micro: [TrainingBatch], lr: Float, clip: Float) throws -> (loss: Float, norm: Float) {
        var out = [(loss: Float, norm: Float)](repeating: (0, 0), count: ranks.count)
        let lock = NSLock()
        defer { for g in groups { g.reset() } }
        let ranks = self.ranks
        try workers.run { g in
            let r = try ranks[g].step(micro: micro, lr: lr, clip: clip)
            lock.lock(); out[g] = r; lock.unlock()
        }
        return out[0]
    }

    public func gather(_ pick: (RankTrainer) -> [Float], canonical: ParameterLayout) throws -> [Float]? {
        let replica0 = (0..<(grid.pp * grid.tp)).map { i in ranks[grid.rank(tpRank: i % grid.tp, stage: i / grid.tp)] }
        let layouts = (0..<grid.pp).map { p in replica0[p * grid.tp].model.layout }
        return grid.gather(replica0.map(pick), layouts: layouts, canonical: canonical, config: ranks[0].model.config)
    }

    public var peakInFlight: [Int] { ranks.map(\.peakInFlight) }
    public var adamStep: Int { ranks[0].adam.step }
}

/// This process as one rank of `grid` under mpirun (world size must be TP x PP x DP).
public final class MPITraining: TrainingExecutor {
    public let grid: ParallelLayout
    public let rank: RankTrainer
    let world: MPICollective, tp: MPICollective, dp: MPICollective
    static let gatherTag = 32001

    public init(config: ModelConfig, grid: ParallelLayout, recompute: Bool = false) throws {
        self.grid = grid
        try checkTrainingLayout(grid, config)
        world = try MPICollective.world()
        guard world.size == grid.worldSize else {
            throw TrainingError("mpirun started \(world.size) processes but \(grid) needs \(grid.worldSize): run mpirun -np \(grid.worldSize)")
        }
        let (t, p, d) = grid.coordinates(ofRank: world.rank)
        tp = try world.split(color: p * grid.dp + d, key: t)
        dp = try world.split(color: p * grid.tp + t, key: d)
        rank = try InProcessTraining.make(config, world.rank, grid: grid, tp: tp, dp: dp, world: world)
        rank.recompute = recompute
        let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? world.size
        Compute.setThreads(max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, local)))
    }

    public func load(_ state: TrainerState) throws { load(state, into: rank) }

    public func step(micro: [TrainingBatch], lr: Float, clip: Float) throws -> (loss: Float, norm: Float) {
        try rank.step(micro: micro, lr: lr, clip: clip)
    }

    /// Replica 0's ranks send their buffers to world rank 0, which puts the whole model together.
    public func gather(_ pick: (RankTrainer) -> [Float], canonical: ParameterLayout) throws -> [Float]? {
        if rank.place.dpRank == 0 && world.rank != 0 {
            try world.sendAsync(pick(rank), to: 0, tag: Self.gatherTag)
            try world.completeSends()
        }
        guard world.rank == 0 else { return nil }
        let c = rank.model.config
        let layouts = try (0..<grid.pp).map { ParameterLayout(config: c, place: try RankPlace(layout: grid, stage: $0, numLayers: c.numLayers)) }
        var bufs: [[Float]] = []
        for i in 0..<(grid.pp * grid.tp) {
            let g = grid.rank(tpRank: i % grid.tp, stage: i / grid.tp)
            if g == 0 { bufs.append(pick(rank)); continue }
            var b = [Float](repeating: 0, count: layouts[i / grid.tp].total)
            try b.withUnsafeMutableBufferPointer { try world.recv($0, from: g, tag: Self.gatherTag) }
            bufs.append(b)
        }
        return grid.gather(bufs, layouts: layouts, canonical: canonical, config: c)
    }

    public var adamStep: Int { rank.adam.step }

    public var peakInFlight: [Int] { [rank.peakInFlight] }
}
