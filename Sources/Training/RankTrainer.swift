// RankTrainer: one training rank's optimizer step, the same code in-process (threads) and over MPI
// (one process per rank). The rank owns its flat parameters, gradients and Adam moments.
//
// A step: this data-parallel replica's micro-batches run through the pipeline in 1F1B order
// (activations to the next stage, their gradients back, tags 2m and 2m+1), gradients accumulate
// with weight 1/M (M micro-batches of the whole global batch); then gradients are summed over
// data-parallel replicas, a tied embedding's two copies (first and last stage) are summed, the
// global norm is taken over every rank (each tensor once), gradients are clipped, and AdamW runs.
// Loss and norm are all-reduced over the world, so every rank returns the same numbers and a
// divergence stops every rank at the same step, before any update.

import Foundation
import TensorCore
import Collectives
import Model

public struct TrainingDiverged: Error, CustomStringConvertible {
    public let loss: Float, gradNorm: Float
    public var description: String { "loss \(loss), gradient norm \(gradNorm)" }
}

public final class RankTrainer {
    public let model: StageTraining
    /// Where this rank sits (its model's place), and the layout of the run.
    public var place: RankPlace { model.place }
    public var grid: ParallelLayout { model.place.layout }
    public internal(set) var params: [Float]
    public internal(set) var adam: AdamW
    /// The last step's gradients (summed over replicas, before clipping when `clip` was 0).
    public internal(set) var grads: [Float]
    let tpc: Collective, dpc: Collective
    let world: Collective & PointToPoint
    public var recompute = false
    /// Peak micro-batches whose activations this rank held during the last step, and the peak
    /// number of activation floats they took.
    public private(set) var peakInFlight = 0
    public private(set) var peakActivationFloats = 0

    static let tiedEmbeddingTag = 32000

    public init(model: StageTraining, params: [Float], adam: AdamW, tp: Collective, dp: Collective, world: Collective & PointToPoint) {
        precondition(params.count == model.layout.total)
        self.model = model
        self.params = params; self.adam = adam
        grads = [Float](repeating: 0, count: params.count)
        tpc = tp; dpc = dp; self.world = world
    }

    func peer(stage p: Int) -> Int { grid.rank(tpRank: place.tpRank, stage: p, dpRank: place.dpRank) }

    /// One step over `micro`, the micro-batches of the whole global batch (this rank runs its
    /// replica's share: replica d takes the d-th contiguous block). Returns (loss, grad norm).
    public func step(micro: [TrainingBatch], lr: Float, clip: Float) throws -> (loss: Float, norm: Float) {
        let M = micro.count, DP = grid.dp
        guard M % DP == 0 else { throw TrainingError("\(M) micro-batches do not divide over \(DP) data-parallel replicas") }
        let mine = Array(micro[(place.dpRank * M / DP)..<((place.dpRank + 1) * M / DP)])
        for b in mine { _ = try model.check(b) }
        let scale = 1 / Float(M)
        grads.withUnsafeMutableBufferPointer { Compute.zero($0) }
        var lossSum: Double = 0
        var acts: [Int: StageActivations] = [:]
        peakInFlight = 0; peakActivationFloats = 0
        try params.withUnsafeBufferPointer { pb in
            try grads.withUnsafeMutableBufferPointer { gb in
                let G0 = gb.baseAddress!
                try model.prepare(pb.baseAddress!)       // this step's weights, packed once
                let C = model.config.hiddenSize
                for op in PipelineSchedule.oneFOneB(stage: place.stage, stages: grid.pp, microBatches: mine.count) {
                    switch op {
                    case .forward(let m):
                        let b = mine[m], n = b.inputs.count * b.inputs[0].count * C
                        var input: [Float]? = nil
                        if !model.isFirst {
                            var x = [Float](repeating: 0, count: n)
                            try x.withUnsafeMutableBufferPointer { try world.recv($0, from: peer(stage: place.stage - 1), tag: 2 * m) }
                            input = x
                        }
                        let (out, a) = try model.forward(batch: b, input: input, lossScale: scale, keep: !recompute, tpc: tpc)
                        acts[m] = a
                        peakInFlight = max(peakInFlight, acts.count)
                        peakActivationFloats = max(peakActivationFloats, acts.values.reduce(0) { $0 + $1.floats })
                        if model.isLast { lossSum += a.loss } else { try world.sendAsync(out, to: peer(stage: place.stage + 1), tag: 2 * m) }
                    case .backward(let m):
                        let b = mine[m], n = b.inputs.count * b.inputs[0].count * C
                        var dOut: [Float]? = nil
                        if !model.isLast {
                            var d = [Float](repeating: 0, count: n)
                            try d.withUnsafeMutableBufferPointer { try world.recv($0, from: peer(stage: place.stage + 1), tag: 2 * m + 1) }
                            dOut = d
                        }
                        let dIn = try model.backward(G0, acts.removeValue(forKey: m)!, batch: b, dOutput: dOut, lossScale: scale, tpc: tpc)
                        if !model.isFirst { try world.sendAsync(dIn, to: peer(stage: place.stage - 1), tag: 2 * m + 1) }
                    }
                }
            }
        }
        try world.completeSends()
        try grads.withUnsafeMutableBufferPointer { try dpc.allReduce($0) }
        try sumTiedEmbedding()
        // global norm (each tensor counted once: replica 0 only, after the DP sum every replica holds
        // the same gradients) and the loss (every replica's last stage), over every rank
        // fixed spans, partial sums added in span order: the same bits on any number of threads
        let spans = model.layout.entries.filter { place.dpRank == 0 && model.layout.countsInNorm($0, tpRank: place.tpRank, stage: place.stage) }
            .flatMap(\.spans)
        var partial = [Double](repeating: 0, count: spans.count)
        grads.withUnsafeBufferPointer { gb in partial.withUnsafeMutableBufferPointer { pb in
            let G = gb.baseAddress!, S = pb.baseAddress!
            Compute.parallelFor(spans.count) { k in S[k] = sumOfSquares(G + spans[k].lowerBound, count: spans[k].count) }
        } }
        let ss = partial.reduce(0, +)
        var red: [Float] = [Float(ss), model.isLast && place.tpRank == 0 ? Float(lossSum / Double(M)) : 0]
        try red.withUnsafeMutableBufferPointer { try world.allReduce($0) }
        let norm = red[0].squareRoot(), loss = red[1]
        guard loss.isFinite, norm.isFinite else { throw TrainingDiverged(loss: loss, gradNorm: norm) }
        // clipping scales the gradients inside the optimizer's pass (and stores them scaled)
        adam.update(params: &params, grads: &grads, lr: lr, gradScale: clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1)
        return (loss, norm)
    }

    /// With tied embeddings and PP > 1, stage 0's word embedding and the last stage's copy used by
    /// the head get the sum of both gradients (Megatron's embedding group), so they stay equal.
    func sumTiedEmbedding() throws {
        guard model.config.tiedEmbeddings, grid.pp > 1, model.isFirst || model.isLast,
              let e = model.layout.entry("embedding.word.weight") else { return }
        let other = peer(stage: model.isFirst ? grid.pp - 1 : 0)
        try world.sendAsync(Array(grads[e.offset..<(e.offset + e.count)]), to: other, tag: Self.tiedEmbeddingTag)
        var theirs = [Float](repeating: 0, count: e.count)
        try theirs.withUnsafeMutableBufferPointer { try world.recv($0, from: other, tag: Self.tiedEmbeddingTag) }
        try world.completeSends()
        // a + b on one side, b + a on the other: the same float either way
        for i in 0..<e.count { grads[e.offset + i] += theirs[i] }
    }
}
