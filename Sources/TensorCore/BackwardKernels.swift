// BackwardKernels: vectorised backward kernels for training, beside the scalar references in
// Kernels.swift that the tests compare them against. Same formulas; the exp is FastMath's `vexp`.
// The activations' backward run in C (16 lanes on AVX-512) with the bits of their Swift SIMD8
// definitions here (`...VectorReference`, which KernelTests compares them against on every ISA).
//
// Owns: GeLU-tanh backward, SiLU-gate backward, LayerNorm and RMSNorm backward over rows; the optimizer
// pass and the gradient norm's sum of squares (C kernels, called from here).

import Foundation
import CKernels

/// dx = GeLU'(x) * dout (tanh approximation), with tanh(u) = 1 - 2 / (1 + exp(2u)): C's pass
/// (`tk_gelu_tanh_backward`, `geluTanhBackwardVectorReference`'s bits), the count % 8 tail the scalar reference.
public func geluTanhBackwardFast(_ dx: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, count: Int) {
    let done = tk_gelu_tanh_backward(dx, x, dout, count)
    if done < count { geluTanhBackward(dx + done, x + done, dout + done, count: count - done) }
}

/// geluTanhBackwardFast in Swift SIMD8: the definition the C pass must equal bit for bit (KernelTests).
public func geluTanhBackwardVectorReference(_ dx: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, count: Int) {
    let k: Float = 0.7978845608028654
    var i = 0
    while i + 8 <= count {
        let v = load8(x + i)
        let v2: SIMD8<Float> = v * v
        let u: SIMD8<Float> = k * (v + 0.044715 * v2 * v)
        let e: SIMD8<Float> = vexp(2 * u)
        let t: SIMD8<Float> = 1 - 2 / (1 + e)
        let a: SIMD8<Float> = 0.5 * (1 + t)
        let b: SIMD8<Float> = 0.5 * v * (1 - t * t) * k
        let c: SIMD8<Float> = 1 + 3 * 0.044715 * v2
        store8(dx + i, (a + b * c) * load8(dout + i))
        i += 8
    }
    if i < count { geluTanhBackward(dx + i, x + i, dout + i, count: count - i) }
}

/// Backward of out = silu(gate) * up: dgate, dup (overwritten): C's pass (`tk_silu_gate_backward`,
/// `siluGateBackwardVectorReference`'s bits), the count % 8 tail the scalar reference.
public func siluGateBackwardFast(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                 gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    let i = tk_silu_gate_backward(dgate, dup, dout, gate, up, count)
    if i < count { siluGateBackward(dgate: dgate + i, dup: dup + i, dout: dout + i, gate: gate + i, up: up + i, count: count - i) }
}

/// siluGateBackwardFast in Swift SIMD8: the definition the C pass must equal bit for bit (KernelTests).
public func siluGateBackwardVectorReference(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                            gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let g = load8(gate + i), d = load8(dout + i)
        let sg: SIMD8<Float> = 1 / (1 + vexp(-g))
        let dsg: SIMD8<Float> = sg * (1 + g * (1 - sg))
        store8(dup + i, d * g * sg)
        store8(dgate + i, d * load8(up + i) * dsg)
        i += 8
    }
    if i < count { siluGateBackward(dgate: dgate + i, dup: dup + i, dout: dout + i, gate: gate + i, up: up + i, count: count - i) }
}

/// dx += LayerNorm'(dout); dgamma += dout * xhat; dbeta += dout, vectorised over the row (rows in order).
public func layerNormBackwardFast(dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>, dbeta: UnsafeMutablePointer<Float>?,
                                  dout: UnsafePointer<Float>, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows n: Int, dim c: Int) {
    let c8 = c - c % 8
    for r in 0..<n {
        let xr = x + r * c, dr = dout + r * c, dxr = dx + r * c
        let m = mean[r], s = rstd[r]
        let vm = SIMD8<Float>(repeating: m), vs = SIMD8<Float>(repeating: s)
        var a = SIMD8<Float>(repeating: 0), b = SIMD8<Float>(repeating: 0)
        var i = 0
        while i < c8 {
            let norm = (load8(xr + i) - vm) * vs, dnorm = load8(gamma + i) * load8(dr + i)
            a += dnorm; b += dnorm * norm
            i += 8
        }
        var dnormMean = a.sum(), dnormNormMean = b.sum()
        while i < c { let norm = (xr[i] - m) * s, dnorm = gamma[i] * dr[i]; dnormMean += dnorm; dnormNormMean += dnorm * norm; i += 1 }
        dnormMean /= Float(c); dnormNormMean /= Float(c)
        let vdm = SIMD8<Float>(repeating: dnormMean), vdnm = SIMD8<Float>(repeating: dnormNormMean)
        i = 0
        while i < c8 {
            let d = load8(dr + i), norm = (load8(xr + i) - vm) * vs, dnorm = load8(gamma + i) * d
            if let dbeta { store8(dbeta + i, load8(dbeta + i) + d) }
            store8(dgamma + i, load8(dgamma + i) + norm * d)
            store8(dxr + i, load8(dxr + i) + vs * (dnorm - vdm - norm * vdnm))
            i += 8
        }
        while i < c {
            let norm = (xr[i] - m) * s, dnorm = gamma[i] * dr[i]
            dbeta?[i] += dr[i]; dgamma[i] += norm * dr[i]; dxr[i] += s * (dnorm - dnormMean - norm * dnormNormMean)
            i += 1
        }
    }
}

/// dx += RMSNorm'(dout); dgamma += dout * x * rstd, vectorised over the row (rows in order).
public func rmsNormBackwardFast(dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows n: Int, dim c: Int) {
    let c8 = c - c % 8
    for r in 0..<n {
        let xr = x + r * c, dr = dout + r * c, dxr = dx + r * c, s = rstd[r]
        var a = SIMD8<Float>(repeating: 0)
        var i = 0
        while i < c8 { a += load8(gamma + i) * load8(dr + i) * load8(xr + i); i += 8 }
        var dot = a.sum()
        while i < c { dot += gamma[i] * dr[i] * xr[i]; i += 1 }
        let k = s * s * s * dot / Float(c)
        let vs = SIMD8<Float>(repeating: s), vk = SIMD8<Float>(repeating: k)
        i = 0
        while i < c8 {
            let d = load8(dr + i), xv = load8(xr + i)
            store8(dgamma + i, load8(dgamma + i) + d * xv * vs)
            store8(dxr + i, load8(dxr + i) + vs * load8(gamma + i) * d - vk * xv)
            i += 8
        }
        while i < c { dgamma[i] += dr[i] * xr[i] * s; dxr[i] += s * gamma[i] * dr[i] - k * xr[i]; i += 1 }
    }
}

/// One AdamW pass over `count` elements (CKernels' tk_adamw: torch.optim.AdamW's operations in its order,
/// each rounded): g = grads * gradScale (stored back when not 1), then the moments and the parameters.
public func adamwUpdate(params: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                        grads: UnsafeMutablePointer<Float>, count: Int, gradScale: Float, beta1: Float, beta2: Float,
                        stepSize: Float, bc2Sqrt: Float, eps: Float, decay: Float) {
    tk_adamw(params, m, v, grads, count, gradScale, beta1, beta2, stepSize, bc2Sqrt, eps, decay)
}

/// The sum of x[i]^2 in double, in one fixed order on every ISA (CKernels' tk_sum_squares).
public func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double { tk_sum_squares(x, count) }
