// Trainer: the training loop on top of `DecoderTraining`: micro-batches accumulated into a global
// batch, global-norm clipping, the LR schedule, AdamW, seeded data order, per-step reporting,
// NaN/inf detection (stop, name the step, keep the last good checkpoint) and periodic saves
// through a caller-supplied closure (the caller owns the checkpoint format).

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
    public let model: DecoderTraining
    public let config: TrainerConfig
    public let rows: [TrainingRow]

    public init(model: DecoderTraining, rows: [TrainingRow], config: TrainerConfig) throws {
        guard config.microBatch > 0, config.globalBatch % config.microBatch == 0 else {
            throw TrainingError("--global-batch \(config.globalBatch) must be a positive multiple of --micro-batch \(config.microBatch)")
        }
        guard !rows.isEmpty else { throw TrainingError("no training rows") }
        self.model = model; self.config = config; self.rows = rows
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
        var grads = [Float](repeating: 0, count: state.params.count)
        var acc = [Float](repeating: 0, count: state.params.count)
        let micro = config.globalBatch / config.microBatch
        let last = min(config.steps, config.exitAfter ?? config.steps)
        while state.step < last {
            let step = state.step + 1
            let t0 = Date()
            let idx = rowIndices(step: step)
            for i in 0..<acc.count { acc[i] = 0 }
            var lossSum: Float = 0
            var tokens = 0
            for m in 0..<micro {
                let rs = idx[(m * config.microBatch)..<((m + 1) * config.microBatch)].map { rows[$0] }
                let batch = TrainingBatch(inputs: rs.map { Array($0.tokens.dropLast()) }, targets: rs.map { Array($0.tokens.dropFirst()) }, mask: rs.map(\.mask))
                let loss = try model.lossAndGradients(params: state.params, grads: &grads, batch: batch)
                lossSum += loss
                tokens += rs.reduce(0) { $0 + $1.mask.count }
                for i in 0..<acc.count { acc[i] += grads[i] }
            }
            let inv = 1 / Float(micro)
            for i in 0..<acc.count { acc[i] *= inv }
            let loss = lossSum * inv
            let norm = clipGlobalNorm(&acc, maxNorm: config.clipGrad)
            guard loss.isFinite, norm.isFinite else {
                throw TrainingError("step \(step): loss \(loss), gradient norm \(norm): training diverged (try a lower learning rate); the last saved checkpoint is intact")
            }
            let lr = config.schedule.at(step)
            state.adam.update(params: &state.params, grads: acc, lr: lr)
            state.step = step
            let dt = Date().timeIntervalSince(t0)
            onStep(StepReport(step: step, loss: loss, lr: lr, gradNorm: norm, tokensPerSecond: Double(tokens) / dt, seconds: dt))
            if config.evalInterval > 0 && step % config.evalInterval == 0 { try evaluate(state) }
            if (config.saveInterval > 0 && step % config.saveInterval == 0) || step == last { try save(state) }
        }
    }
}
