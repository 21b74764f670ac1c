// DecoderTraining: forward with saved activations, and backward beside it, for the whole decoder
// family at TP 1 x PP 1 (llm.c style): LayerNorm or RMSNorm, learned or rotary positions, GeLU
// (tanh / erf) or SwiGLU, multi-head or grouped-query attention, biases or none, tied or untied
// head. Parameters and gradients live in one flat `ParameterLayout`.
//
// Shapes: B batch, T time, N = B*T rows, C hidden, H heads, G groups, D head dim, HD = H*D,
// GD = G*D, F FFN, V vocab. Loss: mean cross-entropy over positions whose mask is set.
// Not yet: tensor- and pipeline-parallel ranks (the inference engine's region operations already
// carry their backward).

import Foundation
import TensorCore
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

public final class DecoderTraining {
    public let config: ModelConfig
    public let layout: ParameterLayout
    let rotary: RotaryTable?

    public init(config: ModelConfig) throws {
        try config.validate()
        self.config = config
        layout = ParameterLayout(config: config)
        rotary = config.positions == .rope ? RotaryTable(headDim: config.headDim, maxPositions: config.maxPositions, theta: config.ropeTheta) : nil
    }

    /// Loss and gradients (grads are overwritten) for one batch.
    public func lossAndGradients(params: [Float], grads: inout [Float], batch: TrainingBatch) throws -> Float {
        precondition(params.count == layout.total && grads.count == layout.total)
        return try params.withUnsafeBufferPointer { try lossAndGradients(P0: $0.baseAddress!, grads: &grads, batch: batch) }
    }

    func lossAndGradients(P0: UnsafePointer<Float>, grads: inout [Float], batch: TrainingBatch) throws -> Float {
        let c = config
        let B = batch.inputs.count
        guard B > 0, let T = batch.inputs.first?.count, T > 0 else { throw TrainingError("empty batch") }
        guard batch.inputs.allSatisfy({ $0.count == T }), batch.targets.allSatisfy({ $0.count == T }), batch.mask.allSatisfy({ $0.count == T }) else {
            throw TrainingError("every sequence of a batch must have \(T) tokens")
        }
        guard T <= c.maxPositions else { throw TrainingError("sequence length \(T) exceeds the model's \(c.maxPositions) positions") }
        for row in batch.inputs + batch.targets { for t in row where t < 0 || t >= c.vocabSize { throw TrainingError("token id \(t) outside the vocabulary [0, \(c.vocabSize))") } }
        let N = B * T, C = c.hiddenSize, H = c.numHeads, G = c.numKVHeads, D = c.headDim, HD = H * D, GD = G * D
        let F = c.ffnSize, V = c.vocabSize, L = c.numLayers, per = H / G
        let eps = c.normEpsilon, bias = c.linearBias, rms = c.norm == .rmsnorm, swiglu = c.activation == .swiglu
        let scale = 1 / Float(D).squareRoot()
        let count = batch.mask.joined().filter { $0 }.count
        guard count > 0 else { throw TrainingError("no position of the batch counts in the loss (empty mask)") }

        func z(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
        // saved activations
        var res = (0...L).map { _ in z(N * C) }                // residual stream into layer l; res[L] = final
        var n1 = (0..<L).map { _ in z(N * C) }, n1m = (0..<L).map { _ in z(N) }, n1s = n1m
        var q = (0..<L).map { _ in z(N * HD) }, k = (0..<L).map { _ in z(N * GD) }, v = k
        var att = (0..<L).map { _ in z(B * H * T * T) }         // softmax probabilities
        var ao = (0..<L).map { _ in z(N * HD) }
        var r2 = (0..<L).map { _ in z(N * C) }
        var n2 = (0..<L).map { _ in z(N * C) }, n2m = (0..<L).map { _ in z(N) }, n2s = n2m
        var pre = (0..<L).map { _ in z(N * F) }, up = swiglu ? pre : [], act = pre
        var nf = z(N * C), nfm = z(N), nfs = z(N)
        var probs = z(N * V)
        let rows = (0..<N).map { $0 % T }                     // position of each row

        func p(_ n: String) -> UnsafePointer<Float> { P0 + layout.offset(n) }
        func pOpt(_ n: String) -> UnsafePointer<Float>? { layout.entry(n).map { P0 + $0.offset } }
        func normF(_ out: inout [Float], _ mean: inout [Float], _ rstd: inout [Float], _ x: [Float], _ name: String) {
            out.withUnsafeMutableBufferPointer { o in mean.withUnsafeMutableBufferPointer { m in rstd.withUnsafeMutableBufferPointer { s in x.withUnsafeBufferPointer { xb in
                if rms { rmsNormForward(o.baseAddress!, rstd: s.baseAddress!, xb.baseAddress!, p(name + ".weight"), rows: N, dim: C, eps: eps) }
                else { layerNormForward(o.baseAddress!, mean: m.baseAddress!, rstd: s.baseAddress!, xb.baseAddress!, p(name + ".weight"), pOpt(name + ".bias"), rows: N, dim: C, eps: eps) }
            } } } }
        }
        func lin(_ y: inout [Float], _ x: [Float], _ name: String, _ inF: Int, _ outF: Int, withBias: Bool) {
            y.withUnsafeMutableBufferPointer { yb in x.withUnsafeBufferPointer { xb in
                linear(yb.baseAddress!, xb.baseAddress!, p(name + ".weight"), withBias ? p(name + ".bias") : nil, rows: N, inFeatures: inF, outFeatures: outF) } }
        }

        var loss: Double = 0
        do {
            res[0].withUnsafeMutableBufferPointer { x in
                for b in 0..<B { for t in 0..<T {
                    let o = x.baseAddress! + (b * T + t) * C
                    o.update(from: p("embedding.word.weight") + batch.inputs[b][t] * C, count: C)
                    if c.positions == .learned { addInPlace(o, p("embedding.position.weight") + t * C, count: C) }
                } }
            }
            for l in 0..<L {
                let pf = "layers.\(l)."
                normF(&n1[l], &n1m[l], &n1s[l], res[l], pf + "norm1")
                lin(&q[l], n1[l], pf + "attn.q", C, HD, withBias: bias)
                lin(&k[l], n1[l], pf + "attn.k", C, GD, withBias: bias)
                lin(&v[l], n1[l], pf + "attn.v", C, GD, withBias: bias)
                if let rot = rotary {
                    q[l].withUnsafeMutableBufferPointer { qb in k[l].withUnsafeMutableBufferPointer { kb in
                        for r in 0..<N { rot.apply(qb.baseAddress! + r * HD, heads: H, pos: rows[r]); rot.apply(kb.baseAddress! + r * GD, heads: G, pos: rows[r]) } } }
                }
                q[l].withUnsafeBufferPointer { qb in k[l].withUnsafeBufferPointer { kb in v[l].withUnsafeBufferPointer { vb in
                    att[l].withUnsafeMutableBufferPointer { ab in ao[l].withUnsafeMutableBufferPointer { ob in
                        for b in 0..<B { for h in 0..<H { let g = h / per; for t in 0..<T {
                            let qt = qb.baseAddress! + (b * T + t) * HD + h * D
                            let row = ab.baseAddress! + ((b * H + h) * T + t) * T
                            for j in 0...t { row[j] = scale * dot(qt, kb.baseAddress! + (b * T + j) * GD + g * D, count: D) }
                            softmaxInPlace(row, count: t + 1)
                            let o = ob.baseAddress! + (b * T + t) * HD + h * D
                            o.update(repeating: 0, count: D)
                            for j in 0...t { axpy(o, row[j], vb.baseAddress! + (b * T + j) * GD + g * D, count: D) }
                        } } }
                    } }
                } } }
                var proj = z(N * C)
                lin(&proj, ao[l], pf + "attn.out", HD, C, withBias: bias)
                r2[l] = res[l]
                r2[l].withUnsafeMutableBufferPointer { rb in proj.withUnsafeBufferPointer { addInPlace(rb.baseAddress!, $0.baseAddress!, count: N * C) } }
                normF(&n2[l], &n2m[l], &n2s[l], r2[l], pf + "norm2")
                if swiglu {
                    lin(&pre[l], n2[l], pf + "mlp.gate", C, F, withBias: bias)
                    lin(&up[l], n2[l], pf + "mlp.up", C, F, withBias: bias)
                    act[l].withUnsafeMutableBufferPointer { a in pre[l].withUnsafeBufferPointer { g in up[l].withUnsafeBufferPointer { u in
                        siluGate(a.baseAddress!, g.baseAddress!, u.baseAddress!, count: N * F) } } }
                } else {
                    lin(&pre[l], n2[l], pf + "mlp.fc1", C, F, withBias: bias)
                    act[l] = pre[l]
                    act[l].withUnsafeMutableBufferPointer { c.activation == .gelu ? geluErf($0.baseAddress!, count: N * F) : geluTanh($0.baseAddress!, count: N * F) }
                }
                var f = z(N * C)
                lin(&f, act[l], pf + "mlp.fc2", F, C, withBias: bias)
                res[l + 1] = r2[l]
                res[l + 1].withUnsafeMutableBufferPointer { rb in f.withUnsafeBufferPointer { addInPlace(rb.baseAddress!, $0.baseAddress!, count: N * C) } }
            }
            normF(&nf, &nfm, &nfs, res[L], "final_norm")
            let headName = c.tiedEmbeddings ? "embedding.word.weight" : "lm_head.weight"
            probs.withUnsafeMutableBufferPointer { yb in nf.withUnsafeBufferPointer { xb in
                linear(yb.baseAddress!, xb.baseAddress!, p(headName), nil, rows: N, inFeatures: C, outFeatures: V) } }
            // cross-entropy; probs becomes dlogits
            probs.withUnsafeMutableBufferPointer { pr in
                let w = Float(1 / Double(count))
                for b in 0..<B { for t in 0..<T {
                    let row = pr.baseAddress! + (b * T + t) * V
                    guard batch.mask[b][t] else { row.update(repeating: 0, count: V); continue }
                    let tgt = batch.targets[b][t]
                    let lse = logSumExp(row, count: V)
                    loss -= Double(row[tgt]) - lse
                    for j in 0..<V { row[j] = Float(exp(Double(row[j]) - lse)) * w }
                    row[tgt] -= w
                } }
            }
        }

        // MARK: backward
        for i in 0..<grads.count { grads[i] = 0 }
        grads.withUnsafeMutableBufferPointer { gb in
            let G0 = gb.baseAddress!
            func g(_ n: String) -> UnsafeMutablePointer<Float> { G0 + layout.offset(n) }
            func gOpt(_ n: String) -> UnsafeMutablePointer<Float>? { layout.entry(n).map { G0 + $0.offset } }
            func normB(_ dx: inout [Float], _ dout: [Float], _ x: [Float], _ mean: [Float], _ rstd: [Float], _ name: String) {
                dx.withUnsafeMutableBufferPointer { d in dout.withUnsafeBufferPointer { dy in x.withUnsafeBufferPointer { xb in mean.withUnsafeBufferPointer { m in rstd.withUnsafeBufferPointer { s in
                    if rms { rmsNormBackward(dx: d.baseAddress!, dgamma: g(name + ".weight"), dout: dy.baseAddress!, x: xb.baseAddress!, gamma: p(name + ".weight"), rstd: s.baseAddress!, rows: N, dim: C) }
                    else { layerNormBackward(dx: d.baseAddress!, dgamma: g(name + ".weight"), dbeta: gOpt(name + ".bias"), dout: dy.baseAddress!, x: xb.baseAddress!, gamma: p(name + ".weight"), mean: m.baseAddress!, rstd: s.baseAddress!, rows: N, dim: C) }
                } } } } }
            }
            func linB(_ dx: inout [Float], accumulate: Bool, _ dy: [Float], _ x: [Float], _ name: String, _ inF: Int, _ outF: Int, withBias: Bool) {
                dx.withUnsafeMutableBufferPointer { d in dy.withUnsafeBufferPointer { dyb in x.withUnsafeBufferPointer { xb in
                    linearBackward(dx: d.baseAddress!, accumulate: accumulate, dW: g(name + ".weight"), db: withBias ? g(name + ".bias") : nil,
                                   dy: dyb.baseAddress!, x: xb.baseAddress!, w: p(name + ".weight"), rows: N, inFeatures: inF, outFeatures: outF) } } }
            }
            do {
                let headName = c.tiedEmbeddings ? "embedding.word.weight" : "lm_head.weight"
                var dnf = z(N * C)
                dnf.withUnsafeMutableBufferPointer { d in probs.withUnsafeBufferPointer { dy in nf.withUnsafeBufferPointer { x in
                    linearBackward(dx: d.baseAddress!, accumulate: false, dW: g(headName), db: nil, dy: dy.baseAddress!, x: x.baseAddress!, w: p(headName), rows: N, inFeatures: C, outFeatures: V) } } }
                var dres = z(N * C)
                normB(&dres, dnf, res[L], nfm, nfs, "final_norm")
                for l in stride(from: L - 1, through: 0, by: -1) {
                    let pf = "layers.\(l)."
                    var dact = z(N * F)
                    linB(&dact, accumulate: false, dres, act[l], pf + "mlp.fc2", F, C, withBias: bias)
                    var dn2 = z(N * C)
                    if swiglu {
                        var dgate = z(N * F), dup = z(N * F)
                        dgate.withUnsafeMutableBufferPointer { dg in dup.withUnsafeMutableBufferPointer { du in dact.withUnsafeBufferPointer { da in
                            pre[l].withUnsafeBufferPointer { gt in up[l].withUnsafeBufferPointer { ub in
                                siluGateBackward(dgate: dg.baseAddress!, dup: du.baseAddress!, dout: da.baseAddress!, gate: gt.baseAddress!, up: ub.baseAddress!, count: N * F) } } } } }
                        linB(&dn2, accumulate: false, dgate, n2[l], pf + "mlp.gate", C, F, withBias: bias)
                        linB(&dn2, accumulate: true, dup, n2[l], pf + "mlp.up", C, F, withBias: bias)
                    } else {
                        var dpre = z(N * F)
                        dpre.withUnsafeMutableBufferPointer { d in pre[l].withUnsafeBufferPointer { x in dact.withUnsafeBufferPointer { dy in
                            if c.activation == .gelu { geluErfBackward(d.baseAddress!, x.baseAddress!, dy.baseAddress!, count: N * F) }
                            else { geluTanhBackward(d.baseAddress!, x.baseAddress!, dy.baseAddress!, count: N * F) } } } }
                        linB(&dn2, accumulate: false, dpre, n2[l], pf + "mlp.fc1", C, F, withBias: bias)
                    }
                    var dr2 = dres     // residual
                    normB(&dr2, dn2, r2[l], n2m[l], n2s[l], pf + "norm2")
                    var dao = z(N * HD)
                    linB(&dao, accumulate: false, dr2, ao[l], pf + "attn.out", HD, C, withBias: bias)
                    var dq = z(N * HD), dk = z(N * GD), dv = z(N * GD), dp = z(T)
                    q[l].withUnsafeBufferPointer { qb in k[l].withUnsafeBufferPointer { kb in v[l].withUnsafeBufferPointer { vb in att[l].withUnsafeBufferPointer { ab in
                    dao.withUnsafeBufferPointer { db in dq.withUnsafeMutableBufferPointer { dqb in dk.withUnsafeMutableBufferPointer { dkb in dv.withUnsafeMutableBufferPointer { dvb in dp.withUnsafeMutableBufferPointer { dpb in
                        for b in 0..<B { for h in 0..<H { let gi = h / per; for t in 0..<T {
                            let row = ab.baseAddress! + ((b * H + h) * T + t) * T
                            let dot_ = db.baseAddress! + (b * T + t) * HD + h * D
                            var sum: Float = 0
                            for j in 0...t {
                                dpb[j] = dot(dot_, vb.baseAddress! + (b * T + j) * GD + gi * D, count: D)
                                sum += row[j] * dpb[j]
                                axpy(dvb.baseAddress! + (b * T + j) * GD + gi * D, row[j], dot_, count: D)
                            }
                            let qt = qb.baseAddress! + (b * T + t) * HD + h * D
                            let dqt = dqb.baseAddress! + (b * T + t) * HD + h * D
                            for j in 0...t {
                                let ds = row[j] * (dpb[j] - sum) * scale
                                axpy(dqt, ds, kb.baseAddress! + (b * T + j) * GD + gi * D, count: D)
                                axpy(dkb.baseAddress! + (b * T + j) * GD + gi * D, ds, qt, count: D)
                            }
                        } } }
                    } } } } } } } } }
                    if let rot = rotary {
                        dq.withUnsafeMutableBufferPointer { qb in dk.withUnsafeMutableBufferPointer { kb in
                            for r in 0..<N { rot.apply(qb.baseAddress! + r * HD, heads: H, pos: rows[r], inverse: true); rot.apply(kb.baseAddress! + r * GD, heads: G, pos: rows[r], inverse: true) } } }
                    }
                    var dn1 = z(N * C)
                    linB(&dn1, accumulate: true, dq, n1[l], pf + "attn.q", C, HD, withBias: bias)
                    linB(&dn1, accumulate: true, dk, n1[l], pf + "attn.k", C, GD, withBias: bias)
                    linB(&dn1, accumulate: true, dv, n1[l], pf + "attn.v", C, GD, withBias: bias)
                    dres = dr2
                    normB(&dres, dn1, res[l], n1m[l], n1s[l], pf + "norm1")
                }
                dres.withUnsafeBufferPointer { d in
                    for b in 0..<B { for t in 0..<T {
                        let r = d.baseAddress! + (b * T + t) * C
                        addInPlace(g("embedding.word.weight") + batch.inputs[b][t] * C, r, count: C)
                        if c.positions == .learned { addInPlace(g("embedding.position.weight") + t * C, r, count: C) }
                    } }
                }
            }
        }
        return Float(loss / Double(count))
    }
}
