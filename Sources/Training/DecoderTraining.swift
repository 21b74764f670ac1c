// DecoderTraining: the whole decoder on one rank (TP 1 x PP 1): loss and gradients of a batch in
// the canonical flat layout. A thin front to `StageTraining`, for callers that hold one flat
// buffer (tests against PyTorch, train-bench); parallel runs go through `ParallelTraining`.

import Foundation
import TensorCore
import Collectives
import Model

public final class DecoderTraining {
    public let config: ModelConfig
    public let layout: ParameterLayout
    let stage: StageTraining
    let single = SingleRank()

    public init(config: ModelConfig) throws {
        stage = try StageTraining(config: config)
        self.config = config
        layout = stage.layout
    }

    /// Loss and gradients (grads are overwritten) for one batch.
    public func lossAndGradients(params: [Float], grads: inout [Float], batch: TrainingBatch) throws -> Float {
        precondition(params.count == layout.total && grads.count == layout.total)
        for i in 0..<grads.count { grads[i] = 0 }
        return try params.withUnsafeBufferPointer { pb in
            try grads.withUnsafeMutableBufferPointer { gb in
                let (_, acts) = try stage.forward(pb.baseAddress!, batch: batch, input: nil, lossScale: 1, keep: true, tpc: single)
                _ = try stage.backward(pb.baseAddress!, gb.baseAddress!, acts, batch: batch, dOutput: nil, lossScale: 1, tpc: single)
                return Float(acts.loss)
            }
        }
    }
}
