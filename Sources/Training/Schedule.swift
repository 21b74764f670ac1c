// Learning-rate schedule (Megatron's OptimizerParamScheduler shapes): linear warm-up from 0 to `lr`
// over `warmup` steps, then cosine or linear decay to `minLR` at `decaySteps`, constant after.

import Foundation

public enum DecayStyle: String, Sendable, CaseIterable { case cosine, linear, constant }

public struct LRSchedule: Sendable, Equatable {
    public var lr: Float, minLR: Float, warmup: Int, decaySteps: Int, style: DecayStyle
    public init(lr: Float, minLR: Float = 0, warmup: Int = 0, decaySteps: Int, style: DecayStyle = .cosine) {
        self.lr = lr; self.minLR = minLR; self.warmup = warmup; self.decaySteps = decaySteps; self.style = style
    }

    /// Learning rate for 1-based `step`.
    public func at(_ step: Int) -> Float {
        if warmup > 0 && step <= warmup { return lr * Float(step) / Float(warmup) }
        if style == .constant { return lr }
        let span = max(1, decaySteps - warmup)
        let progress = min(1, Float(step - warmup) / Float(span))
        let coeff: Float = style == .cosine ? 0.5 * (cosf(Float.pi * progress) + 1) : 1 - progress
        return minLR + coeff * (lr - minLR)
    }
}

/// Scale `grads` so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
public func clipGlobalNorm(_ grads: inout [Float], maxNorm: Float) -> Float {
    var ss: Double = 0
    for g in grads { ss += Double(g) * Double(g) }
    let norm = Float(ss.squareRoot())
    if maxNorm > 0 && norm > maxNorm {
        let s = maxNorm / (norm + 1e-6)
        for i in 0..<grads.count { grads[i] *= s }
    }
    return norm
}
