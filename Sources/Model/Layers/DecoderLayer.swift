// DecoderLayer: one pre-LN transformer layer, written once for inference and training:
//   x [n, C] -> norm1 -> QKV (column-parallel) -> rope -> attention [n, H*D] -> out (row-parallel) (+x)
//            -> norm2 -> fc1 (column-parallel) -> activation -> fc2 (row-parallel) (+x)
// Inference runs it with the sequences' KV caches, reusing one `LayerActivations` as scratch across
// layers; training runs it over the batch's own keys keeping every activation the backward needs,
// and `backward` (beside it) returns the input gradient and accumulates the layer's gradients.

import TensorCore
import Collectives

/// What one layer's forward leaves: the backward's inputs in training, reused scratch in inference.
public struct LayerActivations {
    public var x: [Float] = []              // training: the layer's input [n, C]
    public var n1: [Float] = []             // norm1(x) [n, C]
    public var norm1 = NormSaved()
    public var qkv: [Float] = []            // [n, (H+2G)*D], after rope
    public var probs: [Float] = []          // training: attention probabilities, [H][n_s][n_s] per sequence
    public var att: [Float] = []            // attention output [n, H*D]
    public var r2: [Float] = []             // training: x + attention [n, C]
    public var n2: [Float] = []             // norm2(r2) [n, C]
    public var norm2 = NormSaved()
    public var ff: [Float] = []             // fc1 output [n, F] or [n, 2F] (SwiGLU)
    public var mid: [Float] = []            // activation [n, F] (inference GeLU: in place in ff)
    public var proj: [Float] = []           // scratch [n, C]
    public var scores: [Float] = []         // inference: attention scores scratch (the driver sizes it)
    public init() {}

    /// Floats held (memory accounting of activation recomputation).
    public var floats: Int { [x, n1, norm1.mean, norm1.rstd, qkv, probs, att, r2, n2, norm2.mean, norm2.rstd, ff, mid].reduce(0) { $0 + $1.count } }
}

/// Where one layer's gradients go (a training rank's flat gradient buffer).
public struct LayerGrads {
    public let norm1W: UnsafeMutablePointer<Float>, norm1B: UnsafeMutablePointer<Float>?
    public let qkv: LinearGrad, out: LinearGrad
    public let norm2W: UnsafeMutablePointer<Float>, norm2B: UnsafeMutablePointer<Float>?
    public let fc1: LinearGrad, fc2: LinearGrad
    public init(norm1W: UnsafeMutablePointer<Float>, norm1B: UnsafeMutablePointer<Float>?, qkv: LinearGrad, out: LinearGrad,
                norm2W: UnsafeMutablePointer<Float>, norm2B: UnsafeMutablePointer<Float>?, fc1: LinearGrad, fc2: LinearGrad) {
        self.norm1W = norm1W; self.norm1B = norm1B; self.qkv = qkv; self.out = out; self.norm2W = norm2W; self.norm2B = norm2B; self.fc1 = fc1; self.fc2 = fc2
    }
}

@inline(__always) func sized(_ a: inout [Float], _ n: Int) { if a.count != n { a = [Float](repeating: 0, count: n) } }

public struct DecoderLayer {
    public let weights: LayerWeights
    public let norm: Norm, attention: Attention, mlp: MLPActivation
    public let rotary: RotaryTable?

    public init(_ w: LayerWeights, of model: DecoderWeights) {
        let c = model.config
        weights = w; norm = Norm(c)
        attention = Attention(heads: model.localHeads, groups: model.localGroups, headDim: c.headDim)
        mlp = MLPActivation(c.activation, ffn: model.localFFN)
        rotary = model.rotary
    }

    /// x[n, C] -> the layer's output, in place. `positions[r]` is row r's position; `training` keeps
    /// what `backward` needs in `a` (and requires `keys` .batch); `kvOnly` only caches K and V.
    public func forward(_ x: inout [Float], _ a: inout LayerActivations, sequences: [SequenceRows], positions: [Int],
                        keys: Attention.Keys, training: Bool, kvOnly: Bool = false, tp: Collective) throws {
        let W = weights, n = positions.count, C = norm.dim, Q = attention.qkvDim, HD = attention.heads * attention.headDim
        sized(&a.n1, n * C); sized(&a.qkv, n * Q); sized(&a.att, n * HD); sized(&a.proj, n * C); sized(&a.n2, n * C)
        sized(&a.ff, n * mlp.inputWidth)
        if training {
            a.x = x
            let k = attention.heads * sequences.reduce(0) { $0 + $1.count * $1.length }
            a.probs = [Float](unsafeUninitializedCapacity: k) { _, c in c = k }   // attention writes every row whole (0 past the causal limit)
        }
        // norm1 -> QKV (column-parallel) -> rope -> attention
        a.norm1 = x.withUnsafeBufferPointer { xb in a.n1.withUnsafeMutableBufferPointer {
            norm.forward($0.baseAddress!, xb.baseAddress!, gamma: W.norm1W, beta: W.norm1B, rows: n, keep: training) } }
        try a.qkv.withUnsafeMutableBufferPointer { qb in try a.n1.withUnsafeMutableBufferPointer {
            try ColumnParallelLinear.forward(qb.baseAddress!, $0, W.qkvW, bias: W.qkvB, rows: n, tp: tp) } }
        if let rot = rotary { a.qkv.withUnsafeMutableBufferPointer { attention.rope($0.baseAddress!, positions: positions, rot) } }
        try a.att.withUnsafeMutableBufferPointer { ab in try a.qkv.withUnsafeBufferPointer { qb in try a.probs.withUnsafeMutableBufferPointer { pb in
            try attention.forward(ab.baseAddress!, qb.baseAddress!, sequences: sequences, keys: keys, probs: training ? pb.baseAddress! : nil,
                              scratch: &a.scores, kvOnly: kvOnly)
        } } }
        if kvOnly { return }
        // out projection (row-parallel) + residual
        try residual(&x, &a.proj, a.att, W.outW, W.outB, rows: n, tp: tp)
        if training { a.r2 = x }
        // MLP: norm2 -> fc1 (column-parallel) -> activation -> fc2 (row-parallel) + residual
        a.norm2 = x.withUnsafeBufferPointer { xb in a.n2.withUnsafeMutableBufferPointer {
            norm.forward($0.baseAddress!, xb.baseAddress!, gamma: W.norm2W, beta: W.norm2B, rows: n, keep: training) } }
        try a.ff.withUnsafeMutableBufferPointer { fb in try a.n2.withUnsafeMutableBufferPointer {
            try ColumnParallelLinear.forward(fb.baseAddress!, $0, W.fc1W, bias: W.fc1B, rows: n, tp: tp) } }
        if training || mlp.kind == .swiglu {
            sized(&a.mid, n * mlp.ffn)
            a.mid.withUnsafeMutableBufferPointer { mb in a.ff.withUnsafeBufferPointer { mlp.forward(mb.baseAddress!, $0.baseAddress!, rows: n) } }
            try residual(&x, &a.proj, a.mid, W.fc2W, W.fc2B, rows: n, tp: tp)
        } else {
            a.ff.withUnsafeMutableBufferPointer { mlp.forward($0.baseAddress!, UnsafePointer($0.baseAddress!), rows: n) }
            try residual(&x, &a.proj, a.ff, W.fc2W, W.fc2B, rows: n, tp: tp)
        }
    }

    /// x += rowParallel(input) (through `proj`).
    private func residual(_ x: inout [Float], _ proj: inout [Float], _ input: [Float], _ w: WeightMatrix, _ b: [Float]?, rows n: Int, tp: Collective) throws {
        try proj.withUnsafeMutableBufferPointer { pb in try input.withUnsafeBufferPointer {
            try RowParallelLinear.forward(pb, $0.baseAddress!, w, bias: b, rows: n, tp: tp) } }
        x.withUnsafeMutableBufferPointer { xb in proj.withUnsafeBufferPointer { addInPlace(xb.baseAddress!, $0.baseAddress!, count: n * norm.dim) } }
    }

    /// The input gradient [n, C] from the output gradient `dout` and what `forward(training: true)`
    /// kept; the layer's gradients accumulate into `grads`.
    public func backward(_ dout: [Float], _ a: LayerActivations, grads g: LayerGrads, sequences: [SequenceRows], positions: [Int], tp: Collective) throws -> [Float] {
        guard let B = weights.backward else { preconditionFailure("DecoderLayer.backward needs weights built for training (transposed matrices)") }
        let W = weights, n = positions.count, C = norm.dim, Q = attention.qkvDim, HD = attention.heads * attention.headDim
        func z(_ k: Int) -> [Float] { [Float](repeating: 0, count: k) }
        // for a buffer its producer overwrites whole (each says so): no zeroing pass, ~200 MB a step at GPT-2's size
        func fresh(_ k: Int) -> [Float] { [Float](unsafeUninitializedCapacity: k) { _, c in c = k } }
        // fc2 (row-parallel), activation, fc1 (column-parallel: all-reduce of dn2)
        var dres = dout, dmid = fresh(n * mlp.ffn)
        try dmid.withUnsafeMutableBufferPointer { d in try dres.withUnsafeMutableBufferPointer { dy in try a.mid.withUnsafeBufferPointer {
            try RowParallelLinear.backward(dx: d.baseAddress!, dy: dy, x: $0.baseAddress!, transposed: B.fc2, grad: g.fc2, rows: n, tp: tp) } } }
        var dff = fresh(n * mlp.inputWidth)
        dff.withUnsafeMutableBufferPointer { d in dmid.withUnsafeBufferPointer { m in a.ff.withUnsafeBufferPointer {
            mlp.backward(d.baseAddress!, dout: m.baseAddress!, ff: $0.baseAddress!, rows: n) } } }
        var dn2 = fresh(n * C)
        try dn2.withUnsafeMutableBufferPointer { d in try dff.withUnsafeBufferPointer { f in try a.n2.withUnsafeBufferPointer {
            try ColumnParallelLinear.backward(dx: d, dy: f.baseAddress!, x: $0.baseAddress!, transposed: B.fc1, grad: g.fc1, rows: n, tp: tp) } } }
        var dr2 = dres
        normBackward(&dr2, dn2, a.r2, W.norm2W, a.norm2, g.norm2W, g.norm2B, rows: n)
        // out projection (row-parallel), attention, rope, QKV (column-parallel: all-reduce of dn1)
        var datt = fresh(n * HD)
        try datt.withUnsafeMutableBufferPointer { d in try dr2.withUnsafeMutableBufferPointer { dy in try a.att.withUnsafeBufferPointer {
            try RowParallelLinear.backward(dx: d.baseAddress!, dy: dy, x: $0.baseAddress!, transposed: B.out, grad: g.out, rows: n, tp: tp) } } }
        var dqkv = z(n * Q)
        dqkv.withUnsafeMutableBufferPointer { d in datt.withUnsafeBufferPointer { da in a.qkv.withUnsafeBufferPointer { q in a.probs.withUnsafeBufferPointer {
            attention.backward(d.baseAddress!, datt: da.baseAddress!, qkv: q.baseAddress!, probs: $0.baseAddress!, sequences: sequences) } } } }
        if let rot = rotary { dqkv.withUnsafeMutableBufferPointer { attention.rope($0.baseAddress!, positions: positions, rot, inverse: true) } }
        var dn1 = fresh(n * C)
        try dn1.withUnsafeMutableBufferPointer { d in try dqkv.withUnsafeBufferPointer { dq in try a.n1.withUnsafeBufferPointer {
            try ColumnParallelLinear.backward(dx: d, dy: dq.baseAddress!, x: $0.baseAddress!, transposed: B.qkv, grad: g.qkv, rows: n, tp: tp) } } }
        var dx = dr2
        normBackward(&dx, dn1, a.x, W.norm1W, a.norm1, g.norm1W, g.norm1B, rows: n)
        return dx
    }

    private func normBackward(_ dx: inout [Float], _ dout: [Float], _ x: [Float], _ gamma: [Float], _ saved: NormSaved,
                              _ dW: UnsafeMutablePointer<Float>, _ dB: UnsafeMutablePointer<Float>?, rows n: Int) {
        dx.withUnsafeMutableBufferPointer { d in dout.withUnsafeBufferPointer { dy in x.withUnsafeBufferPointer {
            norm.backward(dx: d.baseAddress!, dgamma: dW, dbeta: dB, dout: dy.baseAddress!, x: $0.baseAddress!, gamma: gamma, saved: saved, rows: n) } } }
    }
}
