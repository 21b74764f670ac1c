// AdamW with decoupled weight decay over the flat buffers (PyTorch's torch.optim.AdamW):
//   p *= 1 - lr*wd (decayed tensors only); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
// The element-wise pass is TensorCore's adamwUpdate (vectorized, each operation rounded in this order).
// Weight decay applies to matrices and embeddings (rank >= 2), not to biases and norm gains,
// as Megatron and nanoGPT configure it.

import Foundation
import TensorCore
import Model

public struct AdamWConfig: Sendable, Equatable {
    public var beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1
    public init(beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

public struct AdamW: Sendable {
    public let config: AdamWConfig
    public internal(set) var m: [Float], v: [Float]
    public internal(set) var step = 0
    let decayMask: [Bool]          // per layout entry
    let layout: ParameterLayout

    public init(layout: ParameterLayout, config: AdamWConfig = .init()) {
        self.config = config; self.layout = layout
        m = [Float](repeating: 0, count: layout.total); v = m
        decayMask = layout.entries.map { $0.shape.count >= 2 }
    }

    /// Restore saved moments (resume).
    public init(layout: ParameterLayout, config: AdamWConfig, m: [Float], v: [Float], step: Int) {
        self.init(layout: layout, config: config)
        self.m = m; self.v = v; self.step = step
    }

    /// One step over the flat buffers. `gradScale` (clipping) multiplies the gradients first, and the scaled
    /// gradients are stored back into `grads`, in the same pass.
    public mutating func update(params: inout [Float], grads: inout [Float], lr: Float, gradScale: Float = 1) {
        step += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps
        let bc1 = 1 - powf(b1, Float(step)), bc2 = 1 - powf(b2, Float(step))
        let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
        // element-wise, so any split over threads gives the same bits
        var spans: [(lo: Int, hi: Int, decay: Float)] = []
        for (k, e) in layout.entries.enumerated() {
            let decay = decayMask[k] ? 1 - lr * config.weightDecay : 1
            spans += e.spans.map { ($0.lowerBound, $0.upperBound, decay) }
        }
        params.withUnsafeMutableBufferPointer { pb in m.withUnsafeMutableBufferPointer { mb in v.withUnsafeMutableBufferPointer { vb in grads.withUnsafeMutableBufferPointer { gb in
            let P = pb.baseAddress!, M = mb.baseAddress!, V = vb.baseAddress!, G = gb.baseAddress!
            Compute.parallelFor(spans.count) { k in
                let (lo, hi, decay) = spans[k]
                adamwUpdate(params: P + lo, m: M + lo, v: V + lo, grads: G + lo, count: hi - lo, gradScale: gradScale,
                            beta1: b1, beta2: b2, stepSize: stepSize, bc2Sqrt: bc2Sqrt, eps: eps, decay: decay)
            }
        } } } }
    }
}
