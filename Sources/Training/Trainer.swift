// Trainer: the training loop: seeded data order, micro-batches of the global batch handed to a
// `TrainingExecutor` (any TP x PP x DP layout, in-process or over MPI: 1F1B, accumulation,
// data-parallel reduction, global-norm clipping, AdamW), the LR schedule, per-step reporting,
// NaN/inf detection (stop, name the step, keep the last good checkpoint), evaluations and
// periodic saves through caller-supplied closures (the caller owns the checkpoint format).

import Foundation
import Model

public struct TrainerConfig: Sendable {
    public var microBatch: Int, globalBatch: Int, steps: Int
    public var schedule: LRSchedule
    public var adam: AdamWConfig
    public var clipGrad: Float = 1.0
    public var seed: UInt64 = 1234
    public var saveInterval: Int = 0
    /// Stop (and save) after this step although the schedule runs to `steps` (Megatron's --exit-interval).
    public var exitAfter: Int? = nil
    /// Call `evaluate` every this many steps (0: never).
    public var evalInterval: Int = 0
    public init(microBatch: Int, globalBatch: Int, steps: Int, schedule: LRSchedule, adam: AdamWConfig = .init(), clipGrad: Float = 1, seed: UInt64 = 1234, saveInterval: Int = 0) {
        self.microBatch = microBatch; self.globalBatch = globalBatch; self.steps = steps; self.schedule = schedule
        self.adam = adam; self.clipGrad = clipGrad; self.seed = seed; self.saveInterval = saveInterval
    }
}

public struct StepReport: Sendable {
    public var step: Int, loss: Float, lr: Float, gradNorm: Float, tokensPerSecond: Double, seconds: Double
}

/// Everything needed to continue a run exactly.
public struct TrainerState: Sendable {
    public var params: [Float]
    public var adam: AdamW
    public var step: Int
    public init(params: [Float], adam: AdamW, step: Int) { self.params = params; self.adam = adam; self.step = step }
}

public final class Trainer {
    public let executor: TrainingExecutor
    public let config: TrainerConfig
    public let rows: [TrainingRow]

    public init(executor: TrainingExecutor, rows: [TrainingRow], config: TrainerConfig) throws {
        let dp = executor.grid.dp
        guard config.microBatch > 0, config.globalBatch > 0, config.globalBatch % (config.microBatch * dp) == 0 else {
            throw TrainingError("--global-batch \(config.globalBatch) must be a positive multiple of --micro-batch \(config.microBatch)" + (dp > 1 ? " x \(dp) data-parallel replicas" : ""))
        }
        guard !rows.isEmpty else { throw TrainingError("no training rows") }
        self.executor = executor; self.config = config; self.rows = rows
    }

    /// Row indices of global step `step` (1-based): a seeded permutation per epoch, so a resumed run
    /// sees exactly the rows an uninterrupted one would.
    func rowIndices(step: Int) -> [Int] {
        let g = config.globalBatch
        var out: [Int] = []
        var pos = (step - 1) * g
        while out.count < g {
            let epoch = pos / rows.count, within = pos % rows.count
            out.append(permutation(epoch: epoch)[within])
            pos += 1
        }
        return out
    }

    private var cachedPerm: (Int, [Int])?
    func permutation(epoch: Int) -> [Int] {
        if let c = cachedPerm, c.0 == epoch { return c.1 }
        var rng = SplitMix64(seed: config.seed &+ UInt64(epoch) &* 0x9E3779B97F4A7C15)
        var p = Array(0..<rows.count)
        for i in stride(from: p.count - 1, to: 0, by: -1) { p.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        cachedPerm = (epoch, p)
        return p
    }

    /// Runs from `state.step + 1` to `config.steps`. `onStep` sees every step; `save` is called every
    /// `saveInterval` steps and at the end, with a state that passed the finiteness check.
    public func run(_ state: inout TrainerState, onStep: (StepReport) -> Void, save: (TrainerState) throws -> Void,
                    evaluate: (TrainerState) throws -> Void = { _ in }) throws {
        let micro = config.globalBatch / config.microBatch
        let last = min(config.steps, config.exitAfter ?? config.steps)
        guard state.step < last else { return }
        try executor.load(state)
        // The ranks now own the weights and moments: drop the canonical copies while training
        // (export fills them again for evaluations, saves and the end of the run).
        func release() { state.params = []; state.adam.m = []; state.adam.v = [] }
        release()
        while state.step < last {
            let step = state.step + 1
            let t0 = Date()
            let idx = rowIndices(step: step)
            var batches: [TrainingBatch] = []
            var tokens = 0
            for m in 0..<micro {
                let rs = idx[(m * config.microBatch)..<((m + 1) * config.microBatch)].map { rows[$0] }
                batches.append(TrainingBatch(inputs: rs.map { Array($0.tokens.dropLast()) }, targets: rs.map { Array($0.tokens.dropFirst()) }, mask: rs.map(\.mask)))
                tokens += rs.reduce(0) { $0 + $1.mask.count }
            }
            let lr = config.schedule.at(step)
            let loss: Float, norm: Float
            do { (loss, norm) = try executor.step(micro: batches, lr: lr, clip: config.clipGrad) }
            catch let d as TrainingDiverged {
                try executor.export(into: &state)       // the last good weights (every rank stopped here)
                throw TrainingError("step \(step): \(d): training diverged (try a lower learning rate); the last saved checkpoint is intact")
            }
            state.step = step
            let dt = Date().timeIntervalSince(t0)
            onStep(StepReport(step: step, loss: loss, lr: lr, gradNorm: norm, tokensPerSecond: Double(tokens) / dt, seconds: dt))
            let evaluating = config.evalInterval > 0 && step % config.evalInterval == 0
            let saving = (config.saveInterval > 0 && step % config.saveInterval == 0) || step == last
            if evaluating || saving { try executor.export(into: &state) }
            if evaluating { try evaluate(state) }
            if saving { try save(state) }
            if (evaluating || saving) && step < last { release() }
        }
    }
}
