// FastMath: SIMD8 exp (Cephes expf: range reduction to [-ln2/2, ln2/2], degree-6 polynomial,
// exponent by bit shifting; relative error ~1e-7 over the clamped range) and the activations built
// on it. The scalar kernels in Kernels.swift stay the reference the tests compare against.

import Foundation
import CKernels

@inline(__always) public func vexp(_ xIn: SIMD8<Float>) -> SIMD8<Float> {
    // Clamp, floor and the float-to-int conversion use compares and the 1.5*2^23 rounding trick instead of
    // `clamped`, `.rounded(.down)` and `SIMD8<Int32>(_:rounding:)`, which Swift lowers to per-lane library
    // calls (about 10x slower). Same values bit for bit: NaN clamps to the lower bound as
    // `pointwiseMax` does, and floor/convert are exact for |v| < 2^22 (here |v| <= 128).
    var x = xIn.replacing(with: -87.33654, where: .!(xIn .>= -87.33654))
    x = x.replacing(with: 88.37626, where: x .> 88.37626)
    let v = x * 1.44269504088896341 + 0.5
    let magic = SIMD8<Float>(repeating: 12_582_912)             // 1.5 * 2^23
    let r = (v + magic) - magic                                  // v rounded to nearest
    let fx = r.replacing(with: r - 1, where: r .> v)             // floor(v)
    let n = unsafeBitCast(fx + magic, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127   // Int32(fx) + 127
    return expPolynomial(x, fx, n)
}

/// exp(x) = 2^fx * p(x - fx ln2) for the clamped x, fx = floor(x/ln2 + 1/2) and n = fx + 127 as integers.
@inline(__always) func expPolynomial(_ xc: SIMD8<Float>, _ fx: SIMD8<Float>, _ n: SIMD8<Int32>) -> SIMD8<Float> {
    var x = xc - fx * 0.693359375
    x = x - fx * -2.12194440e-4
    let z = x * x
    var y = SIMD8<Float>(repeating: 1.9875691500e-4)
    y = y * x + 1.3981999507e-3
    y = y * x + 8.3334519073e-3
    y = y * x + 4.1665795894e-2
    y = y * x + 1.6666665459e-1
    y = y * x + 5.0000001201e-1
    y = y * z + x + 1
    let pow2 = unsafeBitCast(n &<< 23, to: SIMD8<Float>.self)
    return y * pow2
}

/// The first formulation of `vexp`'s clamp, floor and conversion (stdlib), kept as the reference
/// that `vexp` must equal bit for bit (TensorCoreTests); both share the polynomial.
public func vexpReference(_ xIn: SIMD8<Float>) -> SIMD8<Float> {
    let x = xIn.clamped(lowerBound: SIMD8(repeating: -87.33654), upperBound: SIMD8(repeating: 88.37626))
    let fx = (x * 1.44269504088896341 + 0.5).rounded(.down)
    return expPolynomial(x, fx, SIMD8<Int32>(fx, rounding: .towardZero) &+ 127)
}

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
@inline(__always) func store8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }

/// In place, vectorised: gelu_tanh(x) = x * sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi)(x + 0.044715 x^3).
/// The C kernel (`tk_gelu_tanh`: 16 lanes on AVX-512) computes `geluTanhVectorReference`'s bits; the
/// count % 8 tail is the scalar reference, as there.
public func geluTanhFast(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let done = tk_gelu_tanh(x, count)
    if done < count { geluTanh(x + done, count: count - done) }
}

/// geluTanhFast in Swift SIMD8 (compiled for the baseline ISA): the definition the C kernel must equal bit
/// for bit (TensorCoreTests).
public func geluTanhVectorReference(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let k: Float = 0.7978845608028654
    var i = 0
    while i + 8 <= count {
        let v = load8(x + i)
        let u = k * (v + 0.044715 * v * v * v)
        store8(x + i, v / (1 + vexp(-2 * u)))
        i += 8
    }
    if i < count { geluTanh(x + i, count: count - i) }
}

/// out = silu(gate) * up, vectorised.
public func siluGateFast(_ out: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let g = load8(gate + i)
        store8(out + i, g / (1 + vexp(-g)) * load8(up + i))
        i += 8
    }
    if i < count { siluGate(out + i, gate + i, up + i, count: count - i) }
}

/// In-place softmax over n, vectorised exp (the exp pass in C, `tk_exp_shifted8`: `softmaxVectorReference`'s bits).
public func softmaxFast(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    let m = rowMax(x, count: n)
    var acc = SIMD8<Float>(repeating: 0)
    let i = withUnsafeMutableBytes(of: &acc) { tk_exp_shifted8(x, n, m, $0.baseAddress!.assumingMemoryBound(to: Float.self)) }
    softmaxFinish(x, count: n, max: m, from: i, sum: acc.sum())
}

/// softmaxFast in Swift SIMD8 alone: the definition the C exp pass must equal bit for bit (TensorCoreTests).
public func softmaxVectorReference(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    let m = rowMax(x, count: n), vm = SIMD8<Float>(repeating: m)
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n { let e = vexp(load8(x + i) - vm); store8(x + i, e); acc += e; i += 8 }
    softmaxFinish(x, count: n, max: m, from: i, sum: acc.sum())
}

/// The largest of x[0..<n] (Swift.max in order, from -infinity: NaNs are passed over, and of +0 and -0 the later).
@inline(__always) func rowMax(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, x[i]) }
    return m
}

/// A softmax after its exp pass over x[0..<start] (whose lane sums gave `sum`): the scalar tail's exps, then
/// every value times 1 / sum.
@inline(__always) func softmaxFinish(_ x: UnsafeMutablePointer<Float>, count n: Int, max m: Float, from start: Int, sum: Float) {
    var i = start, s = sum
    while i < n { let e = expf(x[i] - m); x[i] = e; s += e; i += 1 }
    let inv = 1 / s
    i = 0
    while i + 8 <= n { store8(x + i, load8(x + i) * inv); i += 8 }
    while i < n { x[i] *= inv; i += 1 }
}

/// x[i] = exp(x[i] - shift) in place (vectorised exp); returns the sum (accumulated in Double per block).
/// The exp pass is C's (`tk_exp_shifted8`), `expShiftedVectorReference`'s bits.
public func expShiftedInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int, shift: Float) -> Double {
    blockedExpSum(x, count: n, shift: shift, store: true, pass: expPassC)
}

/// expShiftedInPlace with the exp pass in Swift SIMD8: the definition (TensorCoreTests).
public func expShiftedVectorReference(_ x: UnsafeMutablePointer<Float>, count n: Int, shift: Float) -> Double {
    blockedExpSum(x, count: n, shift: shift, store: true, pass: expPassSwift)
}

/// One row of logits reduced for a log-softmax: its max, the first index holding it, and the sum of
/// exp(x - max) (vectorised exp, blocks of 1024 in Float, then a Double total; the same order for a
/// row whatever else is computed). n > 0. The exp pass is C's (`tk_sum_exp8`), the reference's bits.
public func maxArgmaxSumExp(_ x: UnsafePointer<Float>, count n: Int) -> (max: Float, argmax: Int, sumExp: Double) {
    maxArgmaxSumExp(x, count: n, pass: expPassC)
}

/// maxArgmaxSumExp with the exp pass in Swift SIMD8: the definition (TensorCoreTests).
public func maxArgmaxSumExpVectorReference(_ x: UnsafePointer<Float>, count n: Int) -> (max: Float, argmax: Int, sumExp: Double) {
    maxArgmaxSumExp(x, count: n, pass: expPassSwift)
}

func maxArgmaxSumExp(_ x: UnsafePointer<Float>, count n: Int, pass: ExpPass) -> (max: Float, argmax: Int, sumExp: Double) {
    var vmax = SIMD8<Float>(repeating: -.infinity)
    var i = 0
    while i + 8 <= n { vmax = pointwiseMax(vmax, load8(x + i)); i += 8 }
    var m = vmax.max()
    while i < n { m = Swift.max(m, x[i]); i += 1 }
    var arg = 0
    while arg < n && !(x[arg] == m) { arg += 1 }
    if arg == n { arg = 0 }   // all NaN: the caller checks finiteness
    return (m, arg, blockedExpSum(UnsafeMutablePointer(mutating: x), count: n, shift: m, store: false, pass: pass))
}

/// An exp pass over x[0..<n], n a multiple of 8: the sums of exp(x[i] - m) per SIMD8 lane, each in the
/// order of i, the exps written back when `store`.
typealias ExpPass = (_ x: UnsafeMutablePointer<Float>, _ n: Int, _ m: Float, _ store: Bool) -> SIMD8<Float>

let expPassC: ExpPass = { x, n, m, store in
    var acc = SIMD8<Float>(repeating: 0)
    _ = withUnsafeMutableBytes(of: &acc) { a in
        let lanes = a.baseAddress!.assumingMemoryBound(to: Float.self)
        return store ? tk_exp_shifted8(x, n, m, lanes) : tk_sum_exp8(x, n, m, lanes)
    }
    return acc
}

let expPassSwift: ExpPass = { x, n, m, store in
    let vm = SIMD8<Float>(repeating: m)
    var acc = SIMD8<Float>(repeating: 0), i = 0
    while i < n { let e = vexp(load8(x + i) - vm); if store { store8(x + i, e) }; acc += e; i += 8 }
    return acc
}

/// The sum of exp(x[i] - shift) over x[0..<n]: blocks of 1024 summed per lane in Float, each block's lanes
/// into a Double total, then the n % 8 tail one at a time; the exps written back when `store`.
@inline(__always) func blockedExpSum(_ x: UnsafeMutablePointer<Float>, count n: Int, shift: Float, store: Bool, pass: ExpPass) -> Double {
    var total: Double = 0, i = 0
    while i + 8 <= n {
        let end = min(n - (n - i) % 8, i + 1024)
        total += Double(pass(x + i, end - i, shift, store).sum())
        i = end
    }
    while i < n { let e = expf(x[i] - shift); if store { x[i] = e }; total += Double(e); i += 1 }
    return total
}
