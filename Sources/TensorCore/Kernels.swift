// Kernels: the elementwise and row-wise CPU kernels of the decoder, forward and backward, scalar.
// Outputs first, then inputs, then sizes. The vectorised variants the layers run live in
// FastMath.swift (forward) and BackwardKernels.swift (backward); these stay the references the
// tests compare them against (and run the tails of rows that are not a multiple of 8).
//
// Owns: layernorm, rmsnorm, GeLU (tanh and erf), SiLU-gate (SwiGLU), softmax, log-softmax, rotary
// embedding, residual add, and their backward.

import Foundation

@inline(__always) func sum8(_ v: SIMD8<Float>) -> Float { v.sum() }

/// out[n, C] = LayerNorm(x[n, C]) * gamma + beta  (biased variance, like torch).
public func layerNorm(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                      _ gamma: UnsafePointer<Float>, _ beta: UnsafePointer<Float>?,
                      rows n: Int, dim c: Int, eps: Float) {
    layerNormForward(out, mean: nil, rstd: nil, x, gamma, beta, rows: n, dim: c, eps: eps)
}

/// out[n, C] = x / sqrt(mean(x^2) + eps) * gamma   (HF Llama / Megatron RMSNorm).
public func rmsNorm(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>,
                    rows n: Int, dim c: Int, eps: Float) {
    rmsNormForward(out, rstd: nil, x, gamma, rows: n, dim: c, eps: eps)
}

/// In place: x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
public func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let k: Float = 0.7978845608028654
    for i in 0..<count {
        let v = x[i]
        x[i] = 0.5 * v * (1 + tanhf(k * (v + 0.044715 * v * v * v)))
    }
}

/// In place: x = 0.5 x (1 + erf(x / sqrt 2)).
public func geluErf(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let r: Float = 0.7071067811865476
    for i in 0..<count { let v = x[i]; x[i] = 0.5 * v * (1 + erff(v * r)) }
}

/// out[i] = silu(gate[i]) * up[i].
public func siluGate(_ out: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { let g = gate[i]; out[i] = g / (1 + expf(-g)) * up[i] }
}

/// x += y.
public func addInPlace(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(x + i).storeBytes(of: a + b, as: SIMD8<Float>.self)
        i += 8
    }
    while i < count { x[i] += y[i]; i += 1 }
}

/// In-place softmax over a row of n.
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, x[i]) }
    var s: Float = 0
    for i in 0..<n { let e = expf(x[i] - m); x[i] = e; s += e }
    let inv = 1 / s
    for i in 0..<n { x[i] *= inv }
}

/// log-sum-exp of a row, accumulated in Double (scoring sums many log-probs; keep them exact).
public func logSumExp(_ x: UnsafePointer<Float>, count n: Int) -> Double {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, x[i]) }
    var s: Double = 0
    for i in 0..<n { s += Double(expf(x[i] - m)) }
    return Double(m) + log(s)
}

/// Index of the largest element (first on ties, like torch.argmax).
public func argmax(_ x: UnsafePointer<Float>, count n: Int) -> Int {
    var best = 0
    var bv = x[0]
    for i in 1..<n where x[i] > bv { bv = x[i]; best = i }
    return best
}

/// Rotary tables for rotate-half RoPE: cos/sin [P, D/2], computed as HF does (f32 inv_freq, f32 angle).
public struct RotaryTable: Sendable {
    public let cos: [Float], sin: [Float]
    public let half: Int
    public init(headDim d: Int, maxPositions p: Int, theta: Float) {
        half = d / 2
        var c = [Float](repeating: 0, count: p * half), s = c
        for j in 0..<half {
            let invFreq = 1 / powf(theta, Float(2 * j) / Float(d))
            for t in 0..<p { let a = Float(t) * invFreq; c[t * half + j] = cosf(a); s[t * half + j] = sinf(a) }
        }
        cos = c; sin = s
    }

    /// Rotate `heads` vectors of size D at `x` (stride D between heads) for position `pos`;
    /// `inverse` applies the transpose rotation (backward: gradient at the output -> at the input).
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, pos: Int, inverse: Bool = false) {
        let sign: Float = inverse ? -1 : 1
        cos.withUnsafeBufferPointer { cb in sin.withUnsafeBufferPointer { sb in
            let cp = cb.baseAddress! + pos * half, sp = sb.baseAddress! + pos * half
            for h in 0..<heads {
                let v = x + h * 2 * half
                for j in 0..<half {
                    let a = v[j], b = v[j + half], sn = sign * sp[j]
                    v[j] = a * cp[j] - b * sn
                    v[j + half] = b * cp[j] + a * sn
                }
            }
        } }
    }
}

/// Dot product of two length-n vectors, SIMD8 accumulation.
@inline(__always) public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += alpha * x over n elements.
@inline(__always) public func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, count n: Int) {
    let va = SIMD8<Float>(repeating: alpha)
    var i = 0
    while i + 8 <= n {
        let r = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self) + va * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: r, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}

// MARK: - backward kernels (beside their forwards above)

/// LayerNorm forward; keeps what backward needs (mean[n], rstd[n]) when given somewhere to put it.
public func layerNormForward(_ out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                             _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ beta: UnsafePointer<Float>?,
                             rows n: Int, dim c: Int, eps: Float) {
    for r in 0..<n {
        let xr = x + r * c
        var m: Float = 0
        for i in 0..<c { m += xr[i] }
        m /= Float(c)
        var v: Float = 0
        for i in 0..<c { let d = xr[i] - m; v += d * d }
        let s = 1 / (v / Float(c) + eps).squareRoot()
        mean?[r] = m; rstd?[r] = s
        let o = out + r * c
        if let beta { for i in 0..<c { o[i] = (xr[i] - m) * s * gamma[i] + beta[i] } }
        else { for i in 0..<c { o[i] = (xr[i] - m) * s * gamma[i] } }
    }
}

/// dx += LayerNorm'(dout); dgamma += dout * xhat; dbeta += dout (llm.c's layernorm_backward).
public func layerNormBackward(dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>, dbeta: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows n: Int, dim c: Int) {
    for r in 0..<n {
        let xr = x + r * c, dr = dout + r * c, dxr = dx + r * c
        let m = mean[r], s = rstd[r]
        var dnormMean: Float = 0, dnormNormMean: Float = 0
        for i in 0..<c {
            let norm = (xr[i] - m) * s, dnorm = gamma[i] * dr[i]
            dnormMean += dnorm; dnormNormMean += dnorm * norm
        }
        dnormMean /= Float(c); dnormNormMean /= Float(c)
        for i in 0..<c {
            let norm = (xr[i] - m) * s, dnorm = gamma[i] * dr[i]
            dbeta?[i] += dr[i]
            dgamma[i] += norm * dr[i]
            dxr[i] += s * (dnorm - dnormMean - norm * dnormNormMean)
        }
    }
}

/// dx = GeLU'(x) * dout, tanh approximation.
public func geluTanhBackward(_ dx: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, count: Int) {
    let k: Float = 0.7978845608028654
    for i in 0..<count {
        let v = x[i], cube = 0.044715 * v * v * v
        let t = tanhf(k * (v + cube))
        let sech2 = 1 - t * t
        dx[i] = (0.5 * (1 + t) + 0.5 * v * sech2 * k * (1 + 3 * 0.044715 * v * v)) * dout[i]
    }
}

/// dx = GeLU'(x) * dout, exact erf form.
public func geluErfBackward(_ dx: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, count: Int) {
    let r: Float = 0.7071067811865476, c: Float = 0.3989422804014327
    for i in 0..<count {
        let v = x[i]
        dx[i] = (0.5 * (1 + erff(v * r)) + v * c * expf(-0.5 * v * v)) * dout[i]
    }
}

/// RMSNorm forward; keeps rstd[n] when given somewhere to put it.
public func rmsNormForward(_ out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?, _ x: UnsafePointer<Float>,
                           _ gamma: UnsafePointer<Float>, rows n: Int, dim c: Int, eps: Float) {
    for r in 0..<n {
        let xr = x + r * c, o = out + r * c
        var ss: Float = 0
        for i in 0..<c { ss += xr[i] * xr[i] }
        let s = 1 / (ss / Float(c) + eps).squareRoot()
        rstd?[r] = s
        for i in 0..<c { o[i] = gamma[i] * (xr[i] * s) }
    }
}

/// dx += RMSNorm'(dout); dgamma += dout * x * rstd.
public func rmsNormBackward(dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                            x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows n: Int, dim c: Int) {
    for r in 0..<n {
        let xr = x + r * c, dr = dout + r * c, dxr = dx + r * c, s = rstd[r]
        var dot: Float = 0
        for i in 0..<c { dot += gamma[i] * dr[i] * xr[i] }
        let k = s * s * s * dot / Float(c)
        for i in 0..<c {
            dgamma[i] += dr[i] * xr[i] * s
            dxr[i] += s * gamma[i] * dr[i] - k * xr[i]
        }
    }
}

/// Backward of out = silu(gate) * up: dgate, dup (overwritten).
public func siluGateBackward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                             gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let g = gate[i], sg = 1 / (1 + expf(-g))
        dup[i] = dout[i] * g * sg
        dgate[i] = dout[i] * up[i] * sg * (1 + g * (1 - sg))
    }
}

