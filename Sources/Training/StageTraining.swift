// StageTraining: one training rank's share of the decoder, forward with saved activations and
// backward beside it (llm.c style), for the whole family: LayerNorm or RMSNorm, learned or rotary
// positions, GeLU (tanh / erf) or SwiGLU, multi-head or grouped-query attention, biases or none,
// tied or untied head.
//
// The rank holds TP shard `tpRank` of stage `stage`'s layers (TrainingLayout). Model code crosses
// TP ranks only through the region operations, with Megatron's placement:
//   embedding (vocab-parallel)    local rows, then reduce-from            backward: identity
//   q/k/v, fc1/gate/up (column)   copy-to on the input                    backward: all-reduce dx
//   out, fc2 (row-parallel)       reduce-from on the output, then bias    backward: identity
//   head (vocab-parallel)         copy-to on the input, vocab-parallel cross-entropy (row max by
//                                 all-gather, sum of exp and target logit by all-reduce)
// Stages pass [N, C] activations forward and their gradients back; the caller moves them.
//
// Shapes: B batch, T time, N = B*T rows, C hidden, local Hl = H/TP heads, Gl = G/TP groups,
// D head dim, HDl = Hl*D, GDl = Gl*D, Fl = F/TP, Vl = ceil(V/TP) vocabulary rows.
// Gradients ACCUMULATE into the caller's buffer (micro-batches add up); the loss of a micro-batch
// is the mean cross-entropy over its masked positions, and its gradient is scaled by `lossScale`.

import Foundation
import TensorCore
import Collectives
import Model

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public struct TrainingBatch: Sendable {
    public var inputs: [[Int]]      // [B][T]
    public var targets: [[Int]]     // [B][T]
    public var mask: [[Bool]]       // [B][T]: positions that count in the loss
    public init(inputs: [[Int]], targets: [[Int]], mask: [[Bool]]? = nil) {
        self.inputs = inputs; self.targets = targets
        self.mask = mask ?? inputs.map { $0.map { _ in true } }
    }
}

/// What one micro-batch leaves on a rank for its backward.
final class StageActivations {
    struct Layer {
        var x: [Float] = [], n1: [Float] = [], n1m: [Float] = [], n1s: [Float] = []
        var q: [Float] = [], k: [Float] = [], v: [Float] = [], att: [Float] = [], ao: [Float] = []
        var r2: [Float] = [], n2: [Float] = [], n2m: [Float] = [], n2s: [Float] = []
        var pre: [Float] = [], up: [Float] = [], act: [Float] = []
    }
    var input: [Float]              // the stage's input [N, C] (empty on stage 0: tokens come from the batch)
    var layers: [Layer] = []        // every layer's activations (empty when recomputing)
    var layerInputs: [[Float]] = [] // recomputing: only each layer's input [N, C] (Megatron's full, uniform, 1 layer)
    var final: Layer = Layer()      // x, n1/n1m/n1s: the final norm's input and output
    var dlogits: [Float] = []       // last stage: [N, Vl], already scaled
    var loss: Double = 0            // last stage: mean cross-entropy of this micro-batch
    init(input: [Float]) { self.input = input }

    /// Floats held (for the recomputation's memory accounting).
    var floats: Int {
        func n(_ l: Layer) -> Int {
            [l.x, l.n1, l.n1m, l.n1s, l.q, l.k, l.v, l.att, l.ao, l.r2, l.n2, l.n2m, l.n2s, l.pre, l.up, l.act].reduce(0) { $0 + $1.count }
        }
        return input.count + layers.reduce(0) { $0 + n($1) } + layerInputs.reduce(0) { $0 + $1.count } + n(final) + dlogits.count
    }
}

public final class StageTraining {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let tp: Int, tpRank: Int, stage: Int, pp: Int
    public let layers: Range<Int>
    let rotary: RotaryTable?
    let Vl: Int, vocabStart: Int

    public var isFirst: Bool { stage == 0 }
    public var isLast: Bool { stage == pp - 1 }

    public init(config: ModelConfig, tp: Int = 1, tpRank: Int = 0, stage: Int = 0, pp: Int = 1, layers: Range<Int>? = nil) throws {
        try config.validate()
        try ShardSpec.checkTensorParallel(config, tp: tp)
        self.config = config; self.tp = tp; self.tpRank = tpRank; self.stage = stage; self.pp = pp
        self.layers = layers ?? 0..<config.numLayers
        layout = ParameterLayout(config: config, tp: tp, stage: stage, pp: pp, layers: self.layers)
        Vl = CanonicalCheckpoint.paddedVocab(config.vocabSize, tp: tp, divisibleBy: 1) / tp
        vocabStart = tpRank * Vl
        rotary = config.positions == .rope ? RotaryTable(headDim: config.headDim, maxPositions: config.maxPositions, theta: config.ropeTheta) : nil
    }

    /// Checks a batch before any communication, so every rank throws the same error.
    public func check(_ batch: TrainingBatch) throws -> (B: Int, T: Int, count: Int) {
        let c = config
        let B = batch.inputs.count
        guard B > 0, let T = batch.inputs.first?.count, T > 0 else { throw TrainingError("empty batch") }
        guard batch.inputs.allSatisfy({ $0.count == T }), batch.targets.allSatisfy({ $0.count == T }), batch.mask.allSatisfy({ $0.count == T }),
              batch.targets.count == B, batch.mask.count == B else {
            throw TrainingError("every sequence of a batch must have \(T) tokens, targets and mask entries")
        }
        guard T <= c.maxPositions else { throw TrainingError("sequence length \(T) exceeds the model's \(c.maxPositions) positions") }
        for row in batch.inputs + batch.targets { for t in row where t < 0 || t >= c.vocabSize { throw TrainingError("token id \(t) outside the vocabulary [0, \(c.vocabSize))") } }
        let d = dims(batch)
        guard d.count > 0 else { throw TrainingError("no position of the batch counts in the loss (empty mask)") }
        return d
    }

    /// Batch size, length and counted positions of a batch that passed `check` (callers check every
    /// micro-batch once, before any communication).
    func dims(_ batch: TrainingBatch) -> (B: Int, T: Int, count: Int) {
        (batch.inputs.count, batch.inputs[0].count, batch.mask.reduce(0) { $0 + $1.filter { $0 }.count })
    }

    // MARK: forward

    /// Runs this stage on one micro-batch (checked by the caller). `input` is the previous stage's output [N, C] (nil on
    /// stage 0). Returns this stage's output [N, C] (empty on the last stage, whose loss is in the
    /// activations) and what backward needs; with `keep == false` only each layer's input (and the
    /// final norm's) is kept, and backward recomputes one layer at a time (activation recomputation).
    func forward(_ P0: UnsafePointer<Float>, batch: TrainingBatch, input: [Float]?, lossScale: Float, keep: Bool, tpc: Collective) throws -> ([Float], StageActivations) {
        let (B, T, count) = dims(batch)
        let N = B * T, C = config.hiddenSize
        let saved = StageActivations(input: isFirst ? [] : input!)
        var x: [Float]
        if isFirst { x = try embed(P0, batch, N: N, T: T, tpc: tpc) }
        else {
            guard input!.count == N * C else { throw TrainingError("stage \(stage): received \(input!.count) activations, expected \(N) x \(C)") }
            x = input!
        }
        for l in layers {
            var a = StageActivations.Layer()
            if !keep { saved.layerInputs.append(x) }
            x = try layerForward(P0, l, x, &a, B: B, T: T, tpc: tpc)
            if keep { saved.layers.append(a) }
        }
        if isLast {
            try headForward(P0, x, saved, batch: batch, B: B, T: T, count: count, lossScale: lossScale, tpc: tpc)
            if !keep { saved.final = .init(); saved.final.x = x; saved.dlogits = [] }
            return ([], saved)
        }
        return (x, saved)
    }

    func p(_ P0: UnsafePointer<Float>, _ n: String) -> UnsafePointer<Float> { P0 + layout.offset(n) }
    func pOpt(_ P0: UnsafePointer<Float>, _ n: String) -> UnsafePointer<Float>? { layout.entry(n).map { P0 + $0.offset } }

    func embed(_ P0: UnsafePointer<Float>, _ batch: TrainingBatch, N: Int, T: Int, tpc: Collective) throws -> [Float] {
        let C = config.hiddenSize
        var x = [Float](repeating: 0, count: N * C)
        let W = p(P0, "embedding.word.weight")
        try x.withUnsafeMutableBufferPointer { xb in
            for r in 0..<N {
                let tok = batch.inputs[r / T][r % T] - vocabStart
                if tok >= 0 && tok < Vl { (xb.baseAddress! + r * C).update(from: W + tok * C, count: C) }
            }
            try Region.reduceFromForward(xb, tpc)
            if config.positions == .learned {
                let Pw = p(P0, "embedding.position.weight")
                for r in 0..<N { addInPlace(xb.baseAddress! + r * C, Pw + (r % T) * C, count: C) }
            }
        }
        return x
    }

    func norm(_ P0: UnsafePointer<Float>, _ x: [Float], _ name: String, rows N: Int) -> (out: [Float], mean: [Float], rstd: [Float]) {
        let C = config.hiddenSize
        var o = [Float](repeating: 0, count: N * C), m = [Float](repeating: 0, count: N), s = m
        o.withUnsafeMutableBufferPointer { ob in m.withUnsafeMutableBufferPointer { mb in s.withUnsafeMutableBufferPointer { sb in x.withUnsafeBufferPointer { xb in
            if config.norm == .rmsnorm { rmsNormForward(ob.baseAddress!, rstd: sb.baseAddress!, xb.baseAddress!, p(P0, name + ".weight"), rows: N, dim: C, eps: config.normEpsilon) }
            else { layerNormForward(ob.baseAddress!, mean: mb.baseAddress!, rstd: sb.baseAddress!, xb.baseAddress!, p(P0, name + ".weight"), pOpt(P0, name + ".bias"), rows: N, dim: C, eps: config.normEpsilon) }
        } } } }
        return (o, m, s)
    }

    /// y[N, outF] = x[N, inF] W^T (+ b): a column-parallel layer (its copy-to is the identity forward).
    func columnParallel(_ P0: UnsafePointer<Float>, _ x: [Float], _ name: String, rows N: Int, _ inF: Int, _ outF: Int) -> [Float] {
        var y = [Float](repeating: 0, count: N * outF)
        y.withUnsafeMutableBufferPointer { yb in x.withUnsafeBufferPointer { xb in
            linear(yb.baseAddress!, xb.baseAddress!, p(P0, name + ".weight"), config.linearBias ? p(P0, name + ".bias") : nil, rows: N, inFeatures: inF, outFeatures: outF) } }
        return y
    }

    /// Row-parallel layer: partial products summed over TP (reduce-from), then the replicated bias.
    func rowParallel(_ P0: UnsafePointer<Float>, _ x: [Float], _ name: String, rows N: Int, _ inF: Int, _ outF: Int, tpc: Collective) throws -> [Float] {
        var y = [Float](repeating: 0, count: N * outF)
        try y.withUnsafeMutableBufferPointer { yb in
            x.withUnsafeBufferPointer { xb in linear(yb.baseAddress!, xb.baseAddress!, p(P0, name + ".weight"), nil, rows: N, inFeatures: inF, outFeatures: outF) }
            try Region.reduceFromForward(yb, tpc)
            if config.linearBias { let b = p(P0, name + ".bias"); for r in 0..<N { addInPlace(yb.baseAddress! + r * outF, b, count: outF) } }
        }
        return y
    }

    func layerForward(_ P0: UnsafePointer<Float>, _ l: Int, _ x: [Float], _ a: inout StageActivations.Layer, B: Int, T: Int, tpc: Collective) throws -> [Float] {
        let c = config, N = B * T, C = c.hiddenSize, D = c.headDim
        let Hl = c.numHeads / tp, Gl = c.numKVHeads / tp, HDl = Hl * D, GDl = Gl * D, Fl = c.ffnSize / tp, per = Hl / Gl
        let scale = 1 / Float(D).squareRoot()
        let pf = "layers.\(l)."
        a.x = x
        (a.n1, a.n1m, a.n1s) = norm(P0, x, pf + "norm1", rows: N)
        a.q = columnParallel(P0, a.n1, pf + "attn.q", rows: N, C, HDl)
        a.k = columnParallel(P0, a.n1, pf + "attn.k", rows: N, C, GDl)
        a.v = columnParallel(P0, a.n1, pf + "attn.v", rows: N, C, GDl)
        if let rot = rotary {
            a.q.withUnsafeMutableBufferPointer { qb in a.k.withUnsafeMutableBufferPointer { kb in
                for r in 0..<N { rot.apply(qb.baseAddress! + r * HDl, heads: Hl, pos: r % T); rot.apply(kb.baseAddress! + r * GDl, heads: Gl, pos: r % T) } } }
        }
        a.att = [Float](repeating: 0, count: B * Hl * T * T)
        a.ao = [Float](repeating: 0, count: N * HDl)
        a.q.withUnsafeBufferPointer { qb in a.k.withUnsafeBufferPointer { kb in a.v.withUnsafeBufferPointer { vb in
            a.att.withUnsafeMutableBufferPointer { ab in a.ao.withUnsafeMutableBufferPointer { ob in
                let qB = qb.baseAddress!, kB = kb.baseAddress!, vB = vb.baseAddress!, aB = ab.baseAddress!, oB = ob.baseAddress!
                parallelFor(B * Gl) { task in          // one (sequence, query group) per task: disjoint outputs
                    let b = task / Gl, g = task % Gl
                    for h in (g * per)..<((g + 1) * per) { for t in 0..<T {
                        let qt = qB + (b * T + t) * HDl + h * D
                        let row = aB + ((b * Hl + h) * T + t) * T
                        for j in 0...t { row[j] = scale * dot(qt, kB + (b * T + j) * GDl + g * D, count: D) }
                        softmaxInPlace(row, count: t + 1)
                        let o = oB + (b * T + t) * HDl + h * D
                        for j in 0...t { axpy(o, row[j], vB + (b * T + j) * GDl + g * D, count: D) }
                    } }
                }
            } }
        } } }
        let proj = try rowParallel(P0, a.ao, pf + "attn.out", rows: N, HDl, C, tpc: tpc)
        a.r2 = x
        a.r2.withUnsafeMutableBufferPointer { rb in proj.withUnsafeBufferPointer { addInPlace(rb.baseAddress!, $0.baseAddress!, count: N * C) } }
        (a.n2, a.n2m, a.n2s) = norm(P0, a.r2, pf + "norm2", rows: N)
        if c.activation == .swiglu {
            a.pre = columnParallel(P0, a.n2, pf + "mlp.gate", rows: N, C, Fl)
            a.up = columnParallel(P0, a.n2, pf + "mlp.up", rows: N, C, Fl)
            a.act = [Float](repeating: 0, count: N * Fl)
            a.act.withUnsafeMutableBufferPointer { o in a.pre.withUnsafeBufferPointer { g in a.up.withUnsafeBufferPointer { u in
                siluGate(o.baseAddress!, g.baseAddress!, u.baseAddress!, count: N * Fl) } } }
        } else {
            a.pre = columnParallel(P0, a.n2, pf + "mlp.fc1", rows: N, C, Fl)
            a.act = a.pre
            a.act.withUnsafeMutableBufferPointer { c.activation == .gelu ? geluErf($0.baseAddress!, count: N * Fl) : geluTanh($0.baseAddress!, count: N * Fl) }
        }
        let f = try rowParallel(P0, a.act, pf + "mlp.fc2", rows: N, Fl, C, tpc: tpc)
        var out = a.r2
        out.withUnsafeMutableBufferPointer { ob in f.withUnsafeBufferPointer { addInPlace(ob.baseAddress!, $0.baseAddress!, count: N * C) } }
        return out
    }

    var headName: String { config.tiedEmbeddings ? "embedding.word.weight" : "lm_head.weight" }

    /// Final norm, vocab-parallel logits and cross-entropy; leaves the scaled dlogits in `s`.
    func headForward(_ P0: UnsafePointer<Float>, _ x: [Float], _ s: StageActivations, batch: TrainingBatch, B: Int, T: Int, count: Int, lossScale: Float, tpc: Collective) throws {
        let N = B * T, C = config.hiddenSize, V = config.vocabSize
        s.final.x = x
        (s.final.n1, s.final.n1m, s.final.n1s) = norm(P0, x, "final_norm", rows: N)
        var logits = [Float](repeating: 0, count: N * Vl)
        logits.withUnsafeMutableBufferPointer { yb in s.final.n1.withUnsafeBufferPointer { xb in
            linear(yb.baseAddress!, xb.baseAddress!, p(P0, headName), nil, rows: N, inFeatures: C, outFeatures: Vl) } }
        let valid = max(0, min(Vl, V - vocabStart))      // local columns that are real tokens (the rest is padding)
        let targets = (0..<N).map { batch.targets[$0 / T][$0 % T] - vocabStart }
        // row maxima over the whole vocabulary: all-gather the local ones
        var localMax = [Float](repeating: -Float.greatestFiniteMagnitude, count: N)
        logits.withUnsafeBufferPointer { lb in for r in 0..<N { let row = lb.baseAddress! + r * Vl; for j in 0..<valid { localMax[r] = max(localMax[r], row[j]) } } }
        var allMax = [Float](repeating: 0, count: N * tp)
        try localMax.withUnsafeBufferPointer { sb in try allMax.withUnsafeMutableBufferPointer { try tpc.allGather(sb, into: $0) } }
        let rowMax = (0..<N).map { r in (0..<tp).map { allMax[$0 * N + r] }.max()! }
        // rows become exp(logit - max) in place; sum of exp and the target's logit: all-reduce [2N]
        var sums = [Float](repeating: 0, count: 2 * N)
        logits.withUnsafeMutableBufferPointer { lb in sums.withUnsafeMutableBufferPointer { sb in
            let L = lb.baseAddress!, S = sb.baseAddress!
            parallelFor(N) { r in
                let row = L + r * Vl
                if targets[r] >= 0 && targets[r] < valid { S[N + r] = row[targets[r]] }
                S[r] = Float(expShiftedInPlace(row, count: valid, shift: rowMax[r]))
            }
        } }
        try sums.withUnsafeMutableBufferPointer { try tpc.allReduce($0) }
        // dlogits = softmax * w, minus w at the target; padding and masked rows 0
        let w = lossScale / Float(count)
        var rowLoss = [Double](repeating: 0, count: N)
        logits.withUnsafeMutableBufferPointer { lb in rowLoss.withUnsafeMutableBufferPointer { lossB in
            let L = lb.baseAddress!, RL = lossB.baseAddress!
            parallelFor(N) { r in
                let row = L + r * Vl
                guard batch.mask[r / T][r % T] else { row.update(repeating: 0, count: Vl); return }
                RL[r] = Double(rowMax[r]) + log(Double(sums[r])) - Double(sums[N + r])
                let k = w / sums[r]
                for j in 0..<valid { row[j] *= k }
                for j in valid..<Vl { row[j] = 0 }
                if targets[r] >= 0 && targets[r] < valid { row[targets[r]] -= w }
            }
        } }
        let loss = rowLoss.reduce(0, +)
        s.dlogits = logits
        s.loss = loss / Double(count)
    }

    // MARK: backward

    /// Backward of one micro-batch: adds this rank's gradients into `G0` and returns the gradient
    /// of the stage's input [N, C] (empty on stage 0). `dOutput` is the next stage's input gradient
    /// (nil on the last stage).
    func backward(_ P0: UnsafePointer<Float>, _ G0: UnsafeMutablePointer<Float>, _ saved: StageActivations, batch: TrainingBatch, dOutput: [Float]?,
                  lossScale: Float, tpc: Collective) throws -> [Float] {
        let s = saved
        let (B, T, count) = dims(batch)
        let N = B * T, C = config.hiddenSize
        let recomputing = s.layers.count != layers.count
        var dx: [Float]
        if isLast {
            if recomputing { try headForward(P0, s.final.x, s, batch: batch, B: B, T: T, count: count, lossScale: lossScale, tpc: tpc) }
            var dnf = [Float](repeating: 0, count: N * C)
            try dnf.withUnsafeMutableBufferPointer { d in
                s.dlogits.withUnsafeBufferPointer { dy in s.final.n1.withUnsafeBufferPointer { x in
                    linearBackward(dx: d.baseAddress!, accumulate: false, dW: G0 + layout.offset(headName), db: nil, dy: dy.baseAddress!, x: x.baseAddress!,
                                   w: p(P0, headName), rows: N, inFeatures: C, outFeatures: Vl) } }
                try Region.copyToBackward(d, tpc)
            }
            dx = [Float](repeating: 0, count: N * C)
            normBackward(P0, G0, &dx, dnf, s.final.x, s.final.n1m, s.final.n1s, "final_norm", rows: N)
        } else {
            guard let d = dOutput, d.count == N * C else { throw TrainingError("stage \(stage): received \(dOutput?.count ?? 0) output gradients, expected \(N) x \(C)") }
            dx = d
        }
        for (i, l) in layers.enumerated().reversed() {
            var a = StageActivations.Layer()
            if recomputing { _ = try layerForward(P0, l, s.layerInputs[i], &a, B: B, T: T, tpc: tpc) } else { a = s.layers[i] }
            dx = try layerBackward(P0, G0, l, a, dx, B: B, T: T, tpc: tpc)
            if recomputing { s.layerInputs[i] = [] }
            else { s.layers[i] = .init() }          // free as we go
        }
        if isLast { s.dlogits = []; s.final = .init() }
        if isFirst {
            let Gw = G0 + layout.offset("embedding.word.weight")
            let Gp = layout.entry("embedding.position.weight").map { G0 + $0.offset }
            dx.withUnsafeBufferPointer { d in
                for r in 0..<N {
                    let row = d.baseAddress! + r * C
                    let tok = batch.inputs[r / T][r % T] - vocabStart
                    if tok >= 0 && tok < Vl { addInPlace(Gw + tok * C, row, count: C) }      // backward of reduce-from: identity
                    if let Gp { addInPlace(Gp + (r % T) * C, row, count: C) }
                }
            }
            return []
        }
        return dx
    }

    /// dx += norm backward of dout (and the norm's parameter gradients).
    func normBackward(_ P0: UnsafePointer<Float>, _ G0: UnsafeMutablePointer<Float>, _ dx: inout [Float], _ dout: [Float], _ x: [Float], _ mean: [Float], _ rstd: [Float], _ name: String, rows N: Int) {
        let C = config.hiddenSize
        dx.withUnsafeMutableBufferPointer { d in dout.withUnsafeBufferPointer { dy in x.withUnsafeBufferPointer { xb in mean.withUnsafeBufferPointer { m in rstd.withUnsafeBufferPointer { s in
            if config.norm == .rmsnorm {
                rmsNormBackward(dx: d.baseAddress!, dgamma: G0 + layout.offset(name + ".weight"), dout: dy.baseAddress!, x: xb.baseAddress!, gamma: p(P0, name + ".weight"), rstd: s.baseAddress!, rows: N, dim: C)
            } else {
                layerNormBackward(dx: d.baseAddress!, dgamma: G0 + layout.offset(name + ".weight"), dbeta: layout.entry(name + ".bias").map { G0 + $0.offset },
                                  dout: dy.baseAddress!, x: xb.baseAddress!, gamma: p(P0, name + ".weight"), mean: m.baseAddress!, rstd: s.baseAddress!, rows: N, dim: C)
            }
        } } } } }
    }

    /// dx (+)= dy W; dW += dy^T x; db += sum dy.
    func linearBack(_ P0: UnsafePointer<Float>, _ G0: UnsafeMutablePointer<Float>, _ dx: inout [Float], accumulate: Bool, _ dy: [Float], _ x: [Float], _ name: String,
                    rows N: Int, _ inF: Int, _ outF: Int) {
        let db = config.linearBias ? G0 + layout.offset(name + ".bias") : nil
        dx.withUnsafeMutableBufferPointer { d in dy.withUnsafeBufferPointer { dyb in x.withUnsafeBufferPointer { xb in
            linearBackward(dx: d.baseAddress!, accumulate: accumulate, dW: G0 + layout.offset(name + ".weight"), db: db,
                           dy: dyb.baseAddress!, x: xb.baseAddress!, w: p(P0, name + ".weight"), rows: N, inFeatures: inF, outFeatures: outF) } } }
    }

    func layerBackward(_ P0: UnsafePointer<Float>, _ G0: UnsafeMutablePointer<Float>, _ l: Int, _ a: StageActivations.Layer, _ dres: [Float], B: Int, T: Int, tpc: Collective) throws -> [Float] {
        let c = config, N = B * T, C = c.hiddenSize, D = c.headDim
        let Hl = c.numHeads / tp, Gl = c.numKVHeads / tp, HDl = Hl * D, GDl = Gl * D, Fl = c.ffnSize / tp, per = Hl / Gl
        let scale = 1 / Float(D).squareRoot()
        let pf = "layers.\(l)."
        func z(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
        // MLP: fc2 is row-parallel (backward of reduce-from: identity), fc1/gate/up column-parallel
        var dact = z(N * Fl)
        linearBack(P0, G0, &dact, accumulate: false, dres, a.act, pf + "mlp.fc2", rows: N, Fl, C)
        var dn2 = z(N * C)
        if c.activation == .swiglu {
            var dgate = z(N * Fl), dup = z(N * Fl)
            dgate.withUnsafeMutableBufferPointer { dg in dup.withUnsafeMutableBufferPointer { du in dact.withUnsafeBufferPointer { da in
                a.pre.withUnsafeBufferPointer { gt in a.up.withUnsafeBufferPointer { ub in
                    siluGateBackward(dgate: dg.baseAddress!, dup: du.baseAddress!, dout: da.baseAddress!, gate: gt.baseAddress!, up: ub.baseAddress!, count: N * Fl) } } } } }
            linearBack(P0, G0, &dn2, accumulate: false, dgate, a.n2, pf + "mlp.gate", rows: N, C, Fl)
            linearBack(P0, G0, &dn2, accumulate: true, dup, a.n2, pf + "mlp.up", rows: N, C, Fl)
        } else {
            var dpre = z(N * Fl)
            dpre.withUnsafeMutableBufferPointer { d in a.pre.withUnsafeBufferPointer { x in dact.withUnsafeBufferPointer { dy in
                if c.activation == .gelu { geluErfBackward(d.baseAddress!, x.baseAddress!, dy.baseAddress!, count: N * Fl) }
                else { geluTanhBackward(d.baseAddress!, x.baseAddress!, dy.baseAddress!, count: N * Fl) } } } }
            linearBack(P0, G0, &dn2, accumulate: false, dpre, a.n2, pf + "mlp.fc1", rows: N, C, Fl)
        }
        try dn2.withUnsafeMutableBufferPointer { try Region.copyToBackward($0, tpc) }
        var dr2 = dres
        normBackward(P0, G0, &dr2, dn2, a.r2, a.n2m, a.n2s, pf + "norm2", rows: N)
        // attention
        var dao = z(N * HDl)
        linearBack(P0, G0, &dao, accumulate: false, dr2, a.ao, pf + "attn.out", rows: N, HDl, C)
        var dq = z(N * HDl), dk = z(N * GDl), dv = z(N * GDl)
        a.q.withUnsafeBufferPointer { qb in a.k.withUnsafeBufferPointer { kb in a.v.withUnsafeBufferPointer { vb in a.att.withUnsafeBufferPointer { ab in
        dao.withUnsafeBufferPointer { db in dq.withUnsafeMutableBufferPointer { dqb in dk.withUnsafeMutableBufferPointer { dkb in dv.withUnsafeMutableBufferPointer { dvb in
            let qB = qb.baseAddress!, kB = kb.baseAddress!, vB = vb.baseAddress!, aB = ab.baseAddress!, dB = db.baseAddress!
            let dqB = dqb.baseAddress!, dkB = dkb.baseAddress!, dvB = dvb.baseAddress!
            // one (sequence, query group) per task: it alone writes that group's dk/dv rows and its heads' dq
            parallelFor(B * Gl) { task in
                let b = task / Gl, gi = task % Gl
                var dp = [Float](repeating: 0, count: T)
                dp.withUnsafeMutableBufferPointer { dpb in
                    for h in (gi * per)..<((gi + 1) * per) { for t in 0..<T {
                        let row = aB + ((b * Hl + h) * T + t) * T
                        let dot_ = dB + (b * T + t) * HDl + h * D
                        var sum: Float = 0
                        for j in 0...t {
                            dpb[j] = dot(dot_, vB + (b * T + j) * GDl + gi * D, count: D)
                            sum += row[j] * dpb[j]
                            axpy(dvB + (b * T + j) * GDl + gi * D, row[j], dot_, count: D)
                        }
                        let qt = qB + (b * T + t) * HDl + h * D
                        let dqt = dqB + (b * T + t) * HDl + h * D
                        for j in 0...t {
                            let ds = row[j] * (dpb[j] - sum) * scale
                            axpy(dqt, ds, kB + (b * T + j) * GDl + gi * D, count: D)
                            axpy(dkB + (b * T + j) * GDl + gi * D, ds, qt, count: D)
                        }
                    } }
                }
            }
        } } } } } } } }
        if let rot = rotary {
            dq.withUnsafeMutableBufferPointer { qb in dk.withUnsafeMutableBufferPointer { kb in
                for r in 0..<N { rot.apply(qb.baseAddress! + r * HDl, heads: Hl, pos: r % T, inverse: true); rot.apply(kb.baseAddress! + r * GDl, heads: Gl, pos: r % T, inverse: true) } } }
        }
        var dn1 = z(N * C)
        linearBack(P0, G0, &dn1, accumulate: true, dq, a.n1, pf + "attn.q", rows: N, C, HDl)
        linearBack(P0, G0, &dn1, accumulate: true, dk, a.n1, pf + "attn.k", rows: N, C, GDl)
        linearBack(P0, G0, &dn1, accumulate: true, dv, a.n1, pf + "attn.v", rows: N, C, GDl)
        try dn1.withUnsafeMutableBufferPointer { try Region.copyToBackward($0, tpc) }
        var dx = dr2
        normBackward(P0, G0, &dx, dn1, a.x, a.n1m, a.n1s, pf + "norm1", rows: N)
        return dx
    }
}

/// body(0..<n), spread over the BLAS thread count (the cores this rank was given); each index runs
/// exactly once, so a body that writes disjoint outputs gives the serial result bit for bit.
func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    let w = min(n, max(1, Compute.threads))
    if w <= 1 { for i in 0..<n { body(i) }; return }
    withoutActuallyEscaping(body) { f in
        DispatchQueue.concurrentPerform(iterations: w) { k in
            var i = k
            while i < n { f(i); i += w }
        }
    }
}
