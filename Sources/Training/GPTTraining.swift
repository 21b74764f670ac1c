// GPTTraining: forward with saved activations, and backward, for the GPT family (pre-LayerNorm,
// learned positions, GeLU, biases, tied or untied head) at TP 1 x PP 1, llm.c style: every layer's
// forward beside its backward, parameters and gradients in one flat `ParameterLayout`.
//
// Shapes: B batch, T time, N = B*T rows, C hidden, HD = H*D attention width, F FFN, V vocab.
// Loss: mean cross-entropy over the positions whose mask is set (the loss on a completion only).
// Not yet: RMSNorm / RoPE / SwiGLU backward (Llama family), tensor and pipeline ranks.

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

public final class GPTTraining {
    public let config: ModelConfig
    public let layout: ParameterLayout

    public init(config: ModelConfig) throws {
        guard config.norm == .layernorm, config.positions == .learned, config.activation != .swiglu, config.numKVHeads == config.numHeads else {
            throw TrainingError("training supports the GPT family (LayerNorm, learned positions, GeLU, multi-head attention) so far; this model has \(config.norm.rawValue), \(config.positions.rawValue) positions, \(config.activation.rawValue), \(config.numKVHeads) kv heads")
        }
        self.config = config
        layout = ParameterLayout(config: config)
    }

    /// Loss and gradients (grads are overwritten) for one batch.
    public func lossAndGradients(params: [Float], grads: inout [Float], batch: TrainingBatch) throws -> Float {
        let c = config
        let B = batch.inputs.count
        guard B > 0, let T = batch.inputs.first?.count, T > 0 else { throw TrainingError("empty batch") }
        guard batch.inputs.allSatisfy({ $0.count == T }), batch.targets.allSatisfy({ $0.count == T }) else { throw TrainingError("every sequence of a batch must have \(T) tokens") }
        guard T <= c.maxPositions else { throw TrainingError("sequence length \(T) exceeds the model's \(c.maxPositions) positions") }
        for row in batch.inputs + batch.targets { for t in row where t < 0 || t >= c.vocabSize { throw TrainingError("token id \(t) outside the vocabulary [0, \(c.vocabSize))") } }
        let N = B * T, C = c.hiddenSize, H = c.numHeads, D = c.headDim, HD = H * D, F = c.ffnSize, V = c.vocabSize, L = c.numLayers
        let eps = c.normEpsilon, bias = c.linearBias
        let scale = 1 / Float(D).squareRoot()
        let count = batch.mask.joined().filter { $0 }.count
        guard count > 0 else { throw TrainingError("no position of the batch counts in the loss (empty mask)") }

        func z(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
        // saved activations
        var res = (0...L).map { _ in z(N * C) }            // residual stream into layer l; res[L] = final
        var ln1 = (0..<L).map { _ in z(N * C) }, ln1m = (0..<L).map { _ in z(N) }, ln1s = ln1m
        var q = (0..<L).map { _ in z(N * HD) }, k = q, v = q
        var att = (0..<L).map { _ in z(B * H * T * T) }     // softmax probabilities
        var ao = (0..<L).map { _ in z(N * HD) }
        var r2 = (0..<L).map { _ in z(N * C) }
        var ln2 = (0..<L).map { _ in z(N * C) }, ln2m = (0..<L).map { _ in z(N) }, ln2s = ln2m
        var pre = (0..<L).map { _ in z(N * F) }, act = pre
        var lnf = z(N * C), lnfm = z(N), lnfs = z(N)
        var probs = z(N * V)

        var loss: Double = 0
        params.withUnsafeBufferPointer { pb in
            let P = pb.baseAddress!
            func p(_ n: String) -> UnsafePointer<Float> { P + layout.offset(n) }
            func pOpt(_ n: String) -> UnsafePointer<Float>? { layout.entry(n).map { P + $0.offset } }
            // embeddings
            res[0].withUnsafeMutableBufferPointer { x in
                for b in 0..<B { for t in 0..<T {
                    let o = x.baseAddress! + (b * T + t) * C
                    o.update(from: p("embedding.word.weight") + batch.inputs[b][t] * C, count: C)
                    addInPlace(o, p("embedding.position.weight") + t * C, count: C)
                } }
            }
            for l in 0..<L {
                let pre_ = "layers.\(l)."
                res[l].withUnsafeBufferPointer { xb in ln1[l].withUnsafeMutableBufferPointer { o in ln1m[l].withUnsafeMutableBufferPointer { m in ln1s[l].withUnsafeMutableBufferPointer { s in
                    layerNormForward(o.baseAddress!, mean: m.baseAddress!, rstd: s.baseAddress!, xb.baseAddress!, p(pre_ + "norm1.weight"), pOpt(pre_ + "norm1.bias"), rows: N, dim: C, eps: eps) } } } }
                for (buf, n) in [(0, "q"), (1, "k"), (2, "v")] {
                    func go(_ y: inout [Float]) {
                        y.withUnsafeMutableBufferPointer { yb in ln1[l].withUnsafeBufferPointer { xb in
                            linear(yb.baseAddress!, xb.baseAddress!, p(pre_ + "attn.\(n).weight"), bias ? p(pre_ + "attn.\(n).bias") : nil, rows: N, inFeatures: C, outFeatures: HD) } }
                    }
                    if buf == 0 { go(&q[l]) } else if buf == 1 { go(&k[l]) } else { go(&v[l]) }
                }
                // causal attention, probabilities saved
                q[l].withUnsafeBufferPointer { qb in k[l].withUnsafeBufferPointer { kb in v[l].withUnsafeBufferPointer { vb in
                    att[l].withUnsafeMutableBufferPointer { ab in ao[l].withUnsafeMutableBufferPointer { ob in
                        for b in 0..<B { for h in 0..<H { for t in 0..<T {
                            let qt = qb.baseAddress! + (b * T + t) * HD + h * D
                            let row = ab.baseAddress! + ((b * H + h) * T + t) * T
                            for j in 0...t { row[j] = scale * dot(qt, kb.baseAddress! + (b * T + j) * HD + h * D, count: D) }
                            softmaxInPlace(row, count: t + 1)
                            let o = ob.baseAddress! + (b * T + t) * HD + h * D
                            o.update(repeating: 0, count: D)
                            for j in 0...t { axpy(o, row[j], vb.baseAddress! + (b * T + j) * HD + h * D, count: D) }
                        } } }
                    } }
                } } }
                r2[l] = res[l]
                var proj = z(N * C)
                proj.withUnsafeMutableBufferPointer { yb in ao[l].withUnsafeBufferPointer { xb in
                    linear(yb.baseAddress!, xb.baseAddress!, p(pre_ + "attn.out.weight"), bias ? p(pre_ + "attn.out.bias") : nil, rows: N, inFeatures: HD, outFeatures: C) } }
                r2[l].withUnsafeMutableBufferPointer { rb in proj.withUnsafeBufferPointer { addInPlace(rb.baseAddress!, $0.baseAddress!, count: N * C) } }
                r2[l].withUnsafeBufferPointer { xb in ln2[l].withUnsafeMutableBufferPointer { o in ln2m[l].withUnsafeMutableBufferPointer { m in ln2s[l].withUnsafeMutableBufferPointer { s in
                    layerNormForward(o.baseAddress!, mean: m.baseAddress!, rstd: s.baseAddress!, xb.baseAddress!, p(pre_ + "norm2.weight"), pOpt(pre_ + "norm2.bias"), rows: N, dim: C, eps: eps) } } } }
                pre[l].withUnsafeMutableBufferPointer { yb in ln2[l].withUnsafeBufferPointer { xb in
                    linear(yb.baseAddress!, xb.baseAddress!, p(pre_ + "mlp.fc1.weight"), bias ? p(pre_ + "mlp.fc1.bias") : nil, rows: N, inFeatures: C, outFeatures: F) } }
                act[l] = pre[l]
                act[l].withUnsafeMutableBufferPointer { c.activation == .gelu ? geluErf($0.baseAddress!, count: N * F) : geluTanh($0.baseAddress!, count: N * F) }
                res[l + 1] = r2[l]
                var f = z(N * C)
                f.withUnsafeMutableBufferPointer { yb in act[l].withUnsafeBufferPointer { xb in
                    linear(yb.baseAddress!, xb.baseAddress!, p(pre_ + "mlp.fc2.weight"), bias ? p(pre_ + "mlp.fc2.bias") : nil, rows: N, inFeatures: F, outFeatures: C) } }
                res[l + 1].withUnsafeMutableBufferPointer { rb in f.withUnsafeBufferPointer { addInPlace(rb.baseAddress!, $0.baseAddress!, count: N * C) } }
            }
            res[L].withUnsafeBufferPointer { xb in lnf.withUnsafeMutableBufferPointer { o in lnfm.withUnsafeMutableBufferPointer { m in lnfs.withUnsafeMutableBufferPointer { s in
                layerNormForward(o.baseAddress!, mean: m.baseAddress!, rstd: s.baseAddress!, xb.baseAddress!, p("final_norm.weight"), pOpt("final_norm.bias"), rows: N, dim: C, eps: eps) } } } }
            let head = c.tiedEmbeddings ? p("embedding.word.weight") : p("lm_head.weight")
            probs.withUnsafeMutableBufferPointer { yb in lnf.withUnsafeBufferPointer { xb in
                linear(yb.baseAddress!, xb.baseAddress!, head, nil, rows: N, inFeatures: C, outFeatures: V) } }
            // cross-entropy; probs becomes dlogits
            probs.withUnsafeMutableBufferPointer { pr in
                for b in 0..<B { for t in 0..<T {
                    let row = pr.baseAddress! + (b * T + t) * V
                    let tgt = batch.targets[b][t]
                    let lse = logSumExp(row, count: V)
                    if batch.mask[b][t] { loss -= Double(row[tgt]) - lse }
                    if batch.mask[b][t] {
                        let w = Float(1 / Double(count))
                        for j in 0..<V { row[j] = Float(exp(Double(row[j]) - lse)) * w }
                        row[tgt] -= w
                    } else {
                        row.update(repeating: 0, count: V)
                    }
                } }
            }
        }

        // MARK: backward
        for i in 0..<grads.count { grads[i] = 0 }
        params.withUnsafeBufferPointer { pb in grads.withUnsafeMutableBufferPointer { gb in
            let P = pb.baseAddress!, G = gb.baseAddress!
            func p(_ n: String) -> UnsafePointer<Float> { P + layout.offset(n) }
            func g(_ n: String) -> UnsafeMutablePointer<Float> { G + layout.offset(n) }
            func gOpt(_ n: String) -> UnsafeMutablePointer<Float>? { layout.entry(n).map { G + $0.offset } }
            let headName = c.tiedEmbeddings ? "embedding.word.weight" : "lm_head.weight"
            var dres = z(N * C)
            var dlnf = z(N * C)
            dlnf.withUnsafeMutableBufferPointer { d in probs.withUnsafeBufferPointer { dy in lnf.withUnsafeBufferPointer { x in
                linearBackward(dx: d.baseAddress!, accumulate: false, dW: g(headName), db: nil, dy: dy.baseAddress!, x: x.baseAddress!, w: p(headName), rows: N, inFeatures: C, outFeatures: V) } } }
            dres.withUnsafeMutableBufferPointer { dx in dlnf.withUnsafeBufferPointer { d in res[L].withUnsafeBufferPointer { x in lnfm.withUnsafeBufferPointer { m in lnfs.withUnsafeBufferPointer { s in
                layerNormBackward(dx: dx.baseAddress!, dgamma: g("final_norm.weight"), dbeta: gOpt("final_norm.bias"), dout: d.baseAddress!, x: x.baseAddress!, gamma: p("final_norm.weight"), mean: m.baseAddress!, rstd: s.baseAddress!, rows: N, dim: C) } } } } }
            for l in stride(from: L - 1, through: 0, by: -1) {
                let pre_ = "layers.\(l)."
                // MLP: res[l+1] = r2 + fc2(gelu(fc1(ln2(r2))))
                var dact = z(N * F)
                dact.withUnsafeMutableBufferPointer { d in dres.withUnsafeBufferPointer { dy in act[l].withUnsafeBufferPointer { x in
                    linearBackward(dx: d.baseAddress!, accumulate: false, dW: g(pre_ + "mlp.fc2.weight"), db: bias ? g(pre_ + "mlp.fc2.bias") : nil, dy: dy.baseAddress!, x: x.baseAddress!, w: p(pre_ + "mlp.fc2.weight"), rows: N, inFeatures: F, outFeatures: C) } } }
                var dpre = z(N * F)
                dpre.withUnsafeMutableBufferPointer { d in pre[l].withUnsafeBufferPointer { x in dact.withUnsafeBufferPointer { dy in
                    if c.activation == .gelu { geluErfBackward(d.baseAddress!, x.baseAddress!, dy.baseAddress!, count: N * F) }
                    else { geluTanhBackward(d.baseAddress!, x.baseAddress!, dy.baseAddress!, count: N * F) } } } }
                var dln2 = z(N * C)
                dln2.withUnsafeMutableBufferPointer { d in dpre.withUnsafeBufferPointer { dy in ln2[l].withUnsafeBufferPointer { x in
                    linearBackward(dx: d.baseAddress!, accumulate: false, dW: g(pre_ + "mlp.fc1.weight"), db: bias ? g(pre_ + "mlp.fc1.bias") : nil, dy: dy.baseAddress!, x: x.baseAddress!, w: p(pre_ + "mlp.fc1.weight"), rows: N, inFeatures: C, outFeatures: F) } } }
                var dr2 = dres   // residual
                dr2.withUnsafeMutableBufferPointer { dx in dln2.withUnsafeBufferPointer { d in r2[l].withUnsafeBufferPointer { x in ln2m[l].withUnsafeBufferPointer { m in ln2s[l].withUnsafeBufferPointer { s in
                    layerNormBackward(dx: dx.baseAddress!, dgamma: g(pre_ + "norm2.weight"), dbeta: gOpt(pre_ + "norm2.bias"), dout: d.baseAddress!, x: x.baseAddress!, gamma: p(pre_ + "norm2.weight"), mean: m.baseAddress!, rstd: s.baseAddress!, rows: N, dim: C) } } } } }
                // attention: r2 = res[l] + out(attn(q, k, v))
                var dao = z(N * HD)
                dao.withUnsafeMutableBufferPointer { d in dr2.withUnsafeBufferPointer { dy in ao[l].withUnsafeBufferPointer { x in
                    linearBackward(dx: d.baseAddress!, accumulate: false, dW: g(pre_ + "attn.out.weight"), db: bias ? g(pre_ + "attn.out.bias") : nil, dy: dy.baseAddress!, x: x.baseAddress!, w: p(pre_ + "attn.out.weight"), rows: N, inFeatures: HD, outFeatures: C) } } }
                var dq = z(N * HD), dk = z(N * HD), dv = z(N * HD)
                var dp = z(T)
                q[l].withUnsafeBufferPointer { qb in k[l].withUnsafeBufferPointer { kb in v[l].withUnsafeBufferPointer { vb in att[l].withUnsafeBufferPointer { ab in
                dao.withUnsafeBufferPointer { db in dq.withUnsafeMutableBufferPointer { dqb in dk.withUnsafeMutableBufferPointer { dkb in dv.withUnsafeMutableBufferPointer { dvb in dp.withUnsafeMutableBufferPointer { dpb in
                    for b in 0..<B { for h in 0..<H { for t in 0..<T {
                        let row = ab.baseAddress! + ((b * H + h) * T + t) * T
                        let dot_ = db.baseAddress! + (b * T + t) * HD + h * D
                        var sum: Float = 0
                        for j in 0...t {
                            let vj = vb.baseAddress! + (b * T + j) * HD + h * D
                            dpb[j] = dot(dot_, vj, count: D)
                            sum += row[j] * dpb[j]
                            axpy(dvb.baseAddress! + (b * T + j) * HD + h * D, row[j], dot_, count: D)
                        }
                        let qt = qb.baseAddress! + (b * T + t) * HD + h * D
                        let dqt = dqb.baseAddress! + (b * T + t) * HD + h * D
                        for j in 0...t {
                            let ds = row[j] * (dpb[j] - sum) * scale
                            axpy(dqt, ds, kb.baseAddress! + (b * T + j) * HD + h * D, count: D)
                            axpy(dkb.baseAddress! + (b * T + j) * HD + h * D, ds, qt, count: D)
                        }
                    } } }
                } } } } } } } } }
                var dln1 = z(N * C)
                for (n, dy) in [("q", dq), ("k", dk), ("v", dv)] {
                    dln1.withUnsafeMutableBufferPointer { d in dy.withUnsafeBufferPointer { dyb in ln1[l].withUnsafeBufferPointer { x in
                        linearBackward(dx: d.baseAddress!, accumulate: true, dW: g(pre_ + "attn.\(n).weight"), db: bias ? g(pre_ + "attn.\(n).bias") : nil, dy: dyb.baseAddress!, x: x.baseAddress!, w: p(pre_ + "attn.\(n).weight"), rows: N, inFeatures: C, outFeatures: HD) } } }
                }
                dres = dr2
                dres.withUnsafeMutableBufferPointer { dx in dln1.withUnsafeBufferPointer { d in res[l].withUnsafeBufferPointer { x in ln1m[l].withUnsafeBufferPointer { m in ln1s[l].withUnsafeBufferPointer { s in
                    layerNormBackward(dx: dx.baseAddress!, dgamma: g(pre_ + "norm1.weight"), dbeta: gOpt(pre_ + "norm1.bias"), dout: d.baseAddress!, x: x.baseAddress!, gamma: p(pre_ + "norm1.weight"), mean: m.baseAddress!, rstd: s.baseAddress!, rows: N, dim: C) } } } } }
            }
            // embeddings
            dres.withUnsafeBufferPointer { d in
                for b in 0..<B { for t in 0..<T {
                    let r = d.baseAddress! + (b * T + t) * C
                    addInPlace(g("embedding.word.weight") + batch.inputs[b][t] * C, r, count: C)
                    addInPlace(g("embedding.position.weight") + t * C, r, count: C)
                } }
            }
        } }
        return Float(loss / Double(count))
    }
}
