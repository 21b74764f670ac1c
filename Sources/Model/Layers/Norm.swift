// Norm: the pre-LN norm (LayerNorm or RMSNorm, from the config) over rows of C, forward and backward.
// Forward runs row by row (a row's bits never depend on the rows around it) in blocks of rows on the
// kernels' threads, and keeps mean and rstd per row when training asks for them; backward
// accumulates the parameter gradients over rows in order.

import TensorCore

/// What a norm's backward needs besides its input: per-row mean (LayerNorm) and rstd, [n] each.
public struct NormSaved {
    public var mean: [Float] = [], rstd: [Float] = []
    public init() {}
}

public struct Norm {
    public let kind: NormKind, dim: Int, eps: Float
    public init(_ c: ModelConfig) { kind = c.norm; dim = c.hiddenSize; eps = c.normEpsilon }

    /// out[n, C] = norm(x[n, C]) * gamma (+ beta); with `keep`, returns what the backward needs.
    @discardableResult
    public func forward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, gamma: [Float], beta: [Float]?,
                        rows n: Int, keep: Bool = false) -> NormSaved {
        let C = dim, rms = kind == .rmsnorm, eps = eps
        var saved = NormSaved()
        if keep { saved.mean = rms ? [] : [Float](repeating: 0, count: n); saved.rstd = [Float](repeating: 0, count: n) }
        func run(_ m: UnsafeMutablePointer<Float>?, _ s: UnsafeMutablePointer<Float>?) {
            gamma.withUnsafeBufferPointer { gb in withOptional(beta) { bp in
                let g = gb.baseAddress!
                forRowBlocks(n) { r in
                    if rms { rmsNormForward(out + r * C, rstd: s.map { $0 + r }, x + r * C, g, rows: 1, dim: C, eps: eps) }
                    else { layerNormForward(out + r * C, mean: m.map { $0 + r }, rstd: s.map { $0 + r }, x + r * C, g, bp, rows: 1, dim: C, eps: eps) }
                }
            } }
        }
        if !keep { run(nil, nil); return saved }
        saved.rstd.withUnsafeMutableBufferPointer { sb in
            if rms { run(nil, sb.baseAddress!); return }
            saved.mean.withUnsafeMutableBufferPointer { mb in run(mb.baseAddress!, sb.baseAddress!) }
        }
        return saved
    }

    /// dx[n, C] += norm'(dout); dgamma += ..., dbeta += dout (LayerNorm).
    public func backward(dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>, dbeta: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, x: UnsafePointer<Float>, gamma: [Float], saved: NormSaved, rows n: Int) {
        gamma.withUnsafeBufferPointer { gb in saved.rstd.withUnsafeBufferPointer { sb in
            if kind == .rmsnorm {
                rmsNormBackwardFast(dx: dx, dgamma: dgamma, dout: dout, x: x, gamma: gb.baseAddress!, rstd: sb.baseAddress!, rows: n, dim: dim)
            } else {
                saved.mean.withUnsafeBufferPointer { mb in
                    layerNormBackwardFast(dx: dx, dgamma: dgamma, dbeta: dbeta, dout: dout, x: x, gamma: gb.baseAddress!,
                                          mean: mb.baseAddress!, rstd: sb.baseAddress!, rows: n, dim: dim)
                }
            }
        } }
    }
}
