// DecoderModel: the forward pass of one config-driven decoder over several sequences at once.
//
// Each call appends new tokens to each sequence's caller-owned `KVCache` and returns the logits of
// the rows asked for. Rows of all sequences are stacked so every linear layer is one GEMM:
//   x [N, C] -> L x ( norm1 -> QKV [N, (H+2G)D] -> rope -> cache -> causal attention [N, HD]
//                     -> out proj (+x) -> norm2 -> fc1 -> act -> fc2 (+x) ) -> final norm -> logits [n, V]
// Pre-LN only (Megatron GPT and Llama). Masked positions are excluded from the softmax entirely,
// which equals Megatron's -10000 fill and HF's finfo.min fill in f32.

import TensorCore

public enum LogitRows: Sendable {
    case all          // every new row of every sequence
    case last         // the last new row of each sequence
    case none         // only fill the caches
}

public struct DecoderError: Error, CustomStringConvertible {
    public let description: String
}

public struct DecoderModel: Sendable {
    public let weights: DecoderWeights
    public var config: ModelConfig { weights.config }

    public init(weights: DecoderWeights) { self.weights = weights }

    /// Appends `tokens[s]` to `caches[s]` for every sequence s; returns logits [rows, V].
    public func forward(tokens: [[Int]], caches: [KVCache], logits: LogitRows = .last) throws -> Tensor {
        precondition(tokens.count == caches.count)
        let c = config
        let C = c.hiddenSize, H = c.numHeads, G = c.numKVHeads, D = c.headDim, F = c.ffnSize, V = c.vocabSize
        let qkvDim = (H + 2 * G) * D
        // Row bookkeeping.
        var rowStart: [Int] = [], positions: [Int] = []
        var n = 0
        for (s, toks) in tokens.enumerated() {
            let cache = caches[s]
            if cache.length + toks.count > cache.capacity {
                throw DecoderError(description: "sequence \(s): \(cache.length + toks.count) positions exceed the cache capacity \(cache.capacity) (model max_positions \(c.maxPositions))")
            }
            for t in toks where t < 0 || t >= V {
                throw DecoderError(description: "sequence \(s): token id \(t) is outside the vocabulary [0, \(V))")
            }
            rowStart.append(n)
            for i in 0..<toks.count { positions.append(cache.length + i) }
            n += toks.count
        }
        if n == 0 { return Tensor(zeros: [0, V]) }

        // x [N, C]: embeddings.
        var x = [Float](repeating: 0, count: n * C)
        let W = weights
        x.withUnsafeMutableBufferPointer { xb in
            W.wordEmbedding.withUnsafeBufferPointer { e in
                var r = 0
                for toks in tokens { for t in toks {
                    (xb.baseAddress! + r * C).update(from: e.baseAddress! + t * C, count: C)
                    if let pe = W.positionEmbedding {
                        pe.withUnsafeBufferPointer { pb in addInPlace(xb.baseAddress! + r * C, pb.baseAddress! + positions[r] * C, count: C) }
                    }
                    r += 1
                } }
            }
        }

        let ffnOut = c.activation == .swiglu ? 2 * F : F
        var h = [Float](repeating: 0, count: n * C)
        var qkv = [Float](repeating: 0, count: n * qkvDim)
        var att = [Float](repeating: 0, count: n * H * D)
        var proj = [Float](repeating: 0, count: n * C)
        var ff = [Float](repeating: 0, count: n * ffnOut)
        var act = c.activation == .swiglu ? [Float](repeating: 0, count: n * F) : []
        let maxLen = caches.map { $0.length }.max()! + tokens.map(\.count).max()!
        var scores = [Float](repeating: 0, count: tokens.map(\.count).max()! * maxLen)
        let scale = 1 / Float(D).squareRoot()

        for (li, L) in W.layers.enumerated() {
            // norm1
            x.withUnsafeBufferPointer { xb in h.withUnsafeMutableBufferPointer { hb in
                norm(hb.baseAddress!, xb.baseAddress!, L.norm1W, L.norm1B, rows: n) } }
            // QKV
            qkv.withUnsafeMutableBufferPointer { qb in h.withUnsafeBufferPointer { hb in
                L.qkvW.withUnsafeBufferPointer { wb in withOptional(L.qkvB) { bp in
                    linear(qb.baseAddress!, hb.baseAddress!, wb.baseAddress!, bp, rows: n, inFeatures: C, outFeatures: qkvDim) } } } }
            // rope + cache + attention, per sequence
            qkv.withUnsafeMutableBufferPointer { qb in
                let q0 = qb.baseAddress!
                if let rot = W.rotary {
                    for r in 0..<n {
                        rot.apply(q0 + r * qkvDim, heads: H, pos: positions[r])
                        rot.apply(q0 + r * qkvDim + H * D, heads: G, pos: positions[r])
                    }
                }
                for (s, toks) in tokens.enumerated() where !toks.isEmpty {
                    let cache = caches[s]
                    let start = cache.length, nNew = toks.count, len = start + nNew
                    cache.k.withUnsafeMutableBufferPointer { kb in cache.v.withUnsafeMutableBufferPointer { vb in
                        for i in 0..<nNew {
                            let row = q0 + (rowStart[s] + i) * qkvDim
                            for g in 0..<G {
                                let off = cache.offset(layer: li, group: g) + (start + i) * D
                                (kb.baseAddress! + off).update(from: row + H * D + g * D, count: D)
                                (vb.baseAddress! + off).update(from: row + (H + G) * D + g * D, count: D)
                            }
                        }
                        att.withUnsafeMutableBufferPointer { ab in scores.withUnsafeMutableBufferPointer { sb in
                            let S = sb.baseAddress!
                            for hh in 0..<H {
                                let g = hh / (H / G)
                                let kp = kb.baseAddress! + cache.offset(layer: li, group: g)
                                let vp = vb.baseAddress! + cache.offset(layer: li, group: g)
                                let qp = q0 + rowStart[s] * qkvDim + hh * D
                                let op = ab.baseAddress! + rowStart[s] * H * D + hh * D
                                if nNew <= 4 {
                                    // decode: a few rows; plain SIMD loops beat BLAS call overhead
                                    for i in 0..<nNew {
                                        let allowed = start + i + 1
                                        let srow = S + i * len, qi = qp + i * qkvDim, oi = op + i * H * D
                                        for j in 0..<allowed { srow[j] = scale * dot(qi, kp + j * D, count: D) }
                                        softmaxInPlace(srow, count: allowed)
                                        oi.update(repeating: 0, count: D)
                                        for j in 0..<allowed { axpy(oi, srow[j], vp + j * D, count: D) }
                                    }
                                    continue
                                }
                                // S[nNew, len] = scale * Q_h K_g^T
                                BLAS.gemm(S, ldc: len, qp, lda: qkvDim, kp, ldb: D, transB: true, m: nNew, n: len, k: D, alpha: scale)
                                for i in 0..<nNew {
                                    let allowed = start + i + 1
                                    let srow = S + i * len
                                    softmaxInPlace(srow, count: allowed)
                                    for j in allowed..<len { srow[j] = 0 }
                                }
                                // O[nNew, D] = S V_g
                                BLAS.gemm(op, ldc: H * D, S, lda: len, vp, ldb: D, transB: false, m: nNew, n: D, k: len)
                            }
                        } }
                    } }
                }
            }
            // out projection + residual
            proj.withUnsafeMutableBufferPointer { pb in att.withUnsafeBufferPointer { ab in
                L.outW.withUnsafeBufferPointer { wb in withOptional(L.outB) { bp in
                    linear(pb.baseAddress!, ab.baseAddress!, wb.baseAddress!, bp, rows: n, inFeatures: H * D, outFeatures: C) } } } }
            x.withUnsafeMutableBufferPointer { xb in proj.withUnsafeBufferPointer { pb in addInPlace(xb.baseAddress!, pb.baseAddress!, count: n * C) } }
            // MLP
            x.withUnsafeBufferPointer { xb in h.withUnsafeMutableBufferPointer { hb in
                norm(hb.baseAddress!, xb.baseAddress!, L.norm2W, L.norm2B, rows: n) } }
            ff.withUnsafeMutableBufferPointer { fb in h.withUnsafeBufferPointer { hb in
                L.fc1W.withUnsafeBufferPointer { wb in withOptional(L.fc1B) { bp in
                    linear(fb.baseAddress!, hb.baseAddress!, wb.baseAddress!, bp, rows: n, inFeatures: C, outFeatures: ffnOut) } } } }
            let mid: [Float]
            switch c.activation {
            case .geluTanh: ff.withUnsafeMutableBufferPointer { geluTanh($0.baseAddress!, count: n * F) }; mid = ff
            case .gelu: ff.withUnsafeMutableBufferPointer { geluErf($0.baseAddress!, count: n * F) }; mid = ff
            case .swiglu:
                act.withUnsafeMutableBufferPointer { ab in ff.withUnsafeBufferPointer { fb in
                    for r in 0..<n { siluGate(ab.baseAddress! + r * F, fb.baseAddress! + r * 2 * F, fb.baseAddress! + r * 2 * F + F, count: F) } } }
                mid = act
            }
            proj.withUnsafeMutableBufferPointer { pb in mid.withUnsafeBufferPointer { mb in
                L.fc2W.withUnsafeBufferPointer { wb in withOptional(L.fc2B) { bp in
                    linear(pb.baseAddress!, mb.baseAddress!, wb.baseAddress!, bp, rows: n, inFeatures: F, outFeatures: C) } } } }
            x.withUnsafeMutableBufferPointer { xb in proj.withUnsafeBufferPointer { pb in addInPlace(xb.baseAddress!, pb.baseAddress!, count: n * C) } }
        }
        for (s, toks) in tokens.enumerated() { caches[s].length += toks.count }

        // Rows that need logits.
        var sel: [Int] = []
        switch logits {
        case .all: sel = Array(0..<n)
        case .last: for (s, toks) in tokens.enumerated() where !toks.isEmpty { sel.append(rowStart[s] + toks.count - 1) }
        case .none: return Tensor(zeros: [0, V])
        }
        var hs = [Float](repeating: 0, count: sel.count * C)
        x.withUnsafeBufferPointer { xb in hs.withUnsafeMutableBufferPointer { hb in
            var tmp = [Float](repeating: 0, count: C)
            for (i, r) in sel.enumerated() {
                tmp.withUnsafeMutableBufferPointer { tb in
                    norm(tb.baseAddress!, xb.baseAddress! + r * C, W.finalNormW, W.finalNormB, rows: 1)
                    (hb.baseAddress! + i * C).update(from: tb.baseAddress!, count: C)
                }
            }
        } }
        var out = [Float](repeating: 0, count: sel.count * V)
        let head = W.lmHead ?? W.wordEmbedding
        out.withUnsafeMutableBufferPointer { ob in hs.withUnsafeBufferPointer { hb in head.withUnsafeBufferPointer { eb in
            linear(ob.baseAddress!, hb.baseAddress!, eb.baseAddress!, nil, rows: sel.count, inFeatures: C, outFeatures: V) } } }
        return Tensor(shape: [sel.count, V], data: out)
    }

    @inline(__always)
    private func norm(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ g: [Float], _ b: [Float]?, rows: Int) {
        let c = config
        g.withUnsafeBufferPointer { gb in
            if c.norm == .rmsnorm {
                rmsNorm(out, x, gb.baseAddress!, rows: rows, dim: c.hiddenSize, eps: c.normEpsilon)
            } else {
                withOptional(b) { bp in layerNorm(out, x, gb.baseAddress!, bp, rows: rows, dim: c.hiddenSize, eps: c.normEpsilon) }
            }
        }
    }
}

@inline(__always)
func withOptional<R>(_ a: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0.baseAddress!) } }
    return body(nil)
}
