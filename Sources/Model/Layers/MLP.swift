// MLP activations between fc1 and fc2, forward and backward: GeLU (tanh approximation or erf) on
// fc1's output [n, F], or SwiGLU on the fused [gate | up] output [n, 2F] -> silu(gate) * up [n, F].
// Row by row (a row's bits never depend on the rows around it), blocks of rows on the kernels' threads.
// The linear layers around them are `ColumnParallelLinear` (fc1) and `RowParallelLinear` (fc2).

import TensorCore

public struct MLPActivation {
    public let kind: Activation, ffn: Int      // F: this rank's hidden width
    public init(_ kind: Activation, ffn: Int) { self.kind = kind; self.ffn = ffn }

    /// Width of fc1's output: F, or 2F for SwiGLU's [gate | up].
    public var inputWidth: Int { kind == .swiglu ? 2 * ffn : ffn }

    /// out[n, F] = act(ff[n, inputWidth]); `out` may be `ff` itself for GeLU (in place).
    public func forward(_ out: UnsafeMutablePointer<Float>, _ ff: UnsafePointer<Float>, rows n: Int) {
        let F = ffn
        switch kind {
        case .geluTanh:
            forRowBlocks(n) { r in if UnsafePointer(out) != ff { (out + r * F).update(from: ff + r * F, count: F) }; geluTanhFast(out + r * F, count: F) }
        case .gelu:
            forRowBlocks(n) { r in if UnsafePointer(out) != ff { (out + r * F).update(from: ff + r * F, count: F) }; geluErf(out + r * F, count: F) }
        case .swiglu:
            forRowBlocks(n) { r in siluGateFast(out + r * F, ff + r * 2 * F, ff + r * 2 * F + F, count: F) }
        }
    }

    /// dff[n, inputWidth] (overwritten) from dout[n, F] and fc1's output ff.
    public func backward(_ dff: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, ff: UnsafePointer<Float>, rows n: Int) {
        let F = ffn
        switch kind {
        case .geluTanh: forRowBlocks(n) { r in geluTanhBackwardFast(dff + r * F, ff + r * F, dout + r * F, count: F) }
        case .gelu: forRowBlocks(n) { r in geluErfBackward(dff + r * F, ff + r * F, dout + r * F, count: F) }
        case .swiglu:
            forRowBlocks(n) { r in
                siluGateBackwardFast(dgate: dff + r * 2 * F, dup: dff + r * 2 * F + F, dout: dout + r * F,
                                     gate: ff + r * 2 * F, up: ff + r * 2 * F + F, count: F)
            }
        }
    }
}
