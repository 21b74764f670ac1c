// DecoderModel: the forward pass of one config-driven decoder over several sequences at once.
//
// Each call appends new tokens to each sequence's caller-owned `KVCache` and returns the logits of
// the rows asked for. Rows of all sequences are stacked so every linear layer is one GEMM:
//   x [N, C] -> L x ( norm1 -> QKV [N, (H+2G)D] -> rope -> cache -> causal attention [N, HD]
//                     -> out proj (+x) -> norm2 -> fc1 -> act -> fc2 (+x) ) -> final norm -> logits [n, V]
// Pre-LN only (Megatron GPT and Llama). Masked positions are excluded from the softmax entirely,
// which equals Megatron's -10000 fill and HF's finfo.min fill in f32.

import Foundation
import TensorCore
import Collectives

public enum LogitRows: Sendable {
    case all          // every new row of every sequence
    case last         // the last new row of each sequence
    case none         // only fill the caches
    /// Every new row scores its target token (`targets[s][i]` for row i of sequence s) with a
    /// vocab-parallel log-softmax: the full vocabulary row never lives on one rank. The result is
    /// [rows, 3]: log-prob as a hi/lo pair of floats (value = Double(hi) + Double(lo)) and 1 when the
    /// target is the (first) argmax, else 0.
    case scores(targets: [[Int]])

    /// Rows the result has, from the inputs alone.
    public func rows(counts: [Int]) -> Int {
        switch self {
        case .all, .scores: return counts.reduce(0, +)
        case .last: return counts.filter { $0 > 0 }.count
        case .none: return 0
        }
    }

    /// The same request for the sequences in `r` (a micro-batch).
    public func restricted(to r: Range<Int>) -> LogitRows {
        if case .scores(let t) = self { return .scores(targets: Array(t[r])) }
        return self
    }

    /// Columns of the result for a vocabulary of `v`.
    public func width(vocab v: Int) -> Int { if case .scores = self { return 3 }; return v }
}

public struct DecoderError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

public enum StageInput {
    case tokens([[Int]])          // first stage: new token ids per sequence
    case hidden([Float])          // later stages: [N, C] from the previous stage
}

public enum StageOutput {
    case hidden([Float])          // [N, C] for the next stage
    case logits(Tensor)           // last stage: [rows, V], gathered over the TP group
}

public struct DecoderModel: Sendable {
    public let weights: DecoderWeights
    public var config: ModelConfig { weights.config }

    public init(weights: DecoderWeights) { self.weights = weights }

    /// A cache for this rank's layers and heads.
    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(layers: weights.layers.count, groups: weights.localGroups, headDim: config.headDim,
                capacity: min(capacity ?? config.maxPositions, config.maxPositions))
    }

    /// Whole model on one rank: appends `tokens[s]` to `caches[s]`; returns logits [rows, V].
    public func forward(tokens: [[Int]], caches: [KVCache], logits: LogitRows = .last) throws -> Tensor {
        precondition(weights.shard.tp == 1 && weights.shard.pp == 1, "forward(tokens:) runs a TP 1 x PP 1 model; use ShardedEngine")
        guard case .logits(let t) = try forwardStage(.tokens(tokens), counts: tokens.map(\.count), caches: caches, logits: logits, tp: SingleRank()) else {
            preconditionFailure("last stage returns logits")
        }
        return t
    }

    /// One rank's stage: embeds (first stage) or takes hidden states, runs its layers, and returns
    /// hidden states or (last stage) logits. `counts[s]` new rows of sequence s; caches advance.
    public func forwardStage(_ input: StageInput, counts: [Int], caches: [KVCache], logits: LogitRows, tp: Collective) throws -> StageOutput {
        precondition(counts.count == caches.count)
        let c = config, W = weights
        let C = c.hiddenSize, H = W.localHeads, G = W.localGroups, D = c.headDim, F = W.localFFN
        let groupSize = c.numHeads / c.numKVHeads
        let qkvDim = (H + 2 * G) * D
        var rowStart: [Int] = [], positions: [Int] = []
        var n = 0
        for (s, k) in counts.enumerated() {
            let cache = caches[s]
            if cache.length + k > cache.capacity {
                throw DecoderError(description: "sequence \(s): \(cache.length + k) positions exceed the cache capacity \(cache.capacity) (model max_positions \(c.maxPositions))")
            }
            rowStart.append(n)
            for i in 0..<k { positions.append(cache.length + i) }
            n += k
        }

        // x [N, C]
        var x: [Float]
        switch input {
        case .hidden(let h):
            precondition(h.count == n * C, "stage input has \(h.count) values, expected \(n) x \(C)")
            x = h
        case .tokens(let tokens):
            x = [Float](repeating: 0, count: n * C)
            guard let emb = W.wordEmbedding else { preconditionFailure("tokens given to a stage without the embedding") }
            let lo = W.shard.tpRank * W.localVocab
            var r = 0
            for (s, toks) in tokens.enumerated() {
                for t in toks where t < 0 || t >= c.vocabSize {
                    throw DecoderError(description: "sequence \(s): token id \(t) is outside the vocabulary [0, \(c.vocabSize))")
                }
            }
            x.withUnsafeMutableBufferPointer { xb in
                for toks in tokens { for t in toks {
                    // vocab-parallel: rows outside this rank's range stay zero
                    if t >= lo && t < lo + W.localVocab { emb.copyRow(t - lo, into: xb.baseAddress! + r * C) }
                    r += 1
                } }
            }
            try x.withUnsafeMutableBufferPointer { try Region.reduceFromForward($0, tp) }
            if let pe = W.positionEmbedding {
                x.withUnsafeMutableBufferPointer { xb in pe.withUnsafeBufferPointer { pb in
                    for r in 0..<n { addInPlace(xb.baseAddress! + r * C, pb.baseAddress! + positions[r] * C, count: C) } } }
            }
        }
        if n == 0 {
            for (s, k) in counts.enumerated() { caches[s].length += k }
            return W.shard.isLastStage ? .logits(Tensor(zeros: [0, c.vocabSize])) : .hidden([])
        }

        let ffnOut = c.activation == .swiglu ? 2 * F : F
        var h = [Float](repeating: 0, count: n * C)
        var qkv = [Float](repeating: 0, count: n * qkvDim)
        var att = [Float](repeating: 0, count: n * H * D)
        var proj = [Float](repeating: 0, count: n * C)
        var ff = [Float](repeating: 0, count: n * ffnOut)
        var act = c.activation == .swiglu ? [Float](repeating: 0, count: n * F) : []
        let maxLen = caches.map { $0.length }.max()! + counts.max()!
        // attention scores: one [rows, len] slice per head when that stays under 16 MB (heads then run in parallel)
        let oneHead = counts.max()! * maxLen
        var scores = [Float](repeating: 0, count: H * oneHead <= 4 << 20 ? H * oneHead : oneHead)
        let scale = 1 / Float(D).squareRoot()
        // Without logits (a prefill that only fills caches), the last stage's last layer is needed only for
        // its K and V: its attention output, projection and MLP feed nothing, so they are skipped.
        var cacheOnly = false
        if case .none = logits, W.shard.isLastStage { cacheOnly = true }

        for (li, L) in W.layers.enumerated() {
            let kvOnly = cacheOnly && li == W.layers.count - 1
            // norm1 -> QKV (column-parallel)
            try normThenColumnLinear(&qkv, scratch: &h, x, L.norm1W, L.norm1B, L.qkvW, L.qkvB, rows: n, outFeatures: qkvDim, tp: tp)
            // rope + cache + attention, per sequence
            qkv.withUnsafeMutableBufferPointer { qb in
                let q0 = qb.baseAddress!
                if let rot = W.rotary {
                    for r in 0..<n {
                        rot.apply(q0 + r * qkvDim, heads: H, pos: positions[r])
                        rot.apply(q0 + r * qkvDim + H * D, heads: G, pos: positions[r])
                    }
                }
                for (s, nNew) in counts.enumerated() where nNew > 0 {
                    let cache = caches[s]
                    let start = cache.length, len = start + nNew
                    cache.k.withUnsafeMutableBufferPointer { kb in cache.v.withUnsafeMutableBufferPointer { vb in
                        for i in 0..<nNew {
                            let row = q0 + (rowStart[s] + i) * qkvDim
                            for g in 0..<G {
                                let off = cache.offset(layer: li, group: g) + (start + i) * D
                                (kb.baseAddress! + off).update(from: row + H * D + g * D, count: D)
                                (vb.baseAddress! + off).update(from: row + (H + G) * D + g * D, count: D)
                            }
                        }
                        if kvOnly { return }
                        // heads in parallel when their score rows fit in the scratch (one [nNew, len] slice each)
                        let perHead = nNew * len
                        let parallel = H * perHead <= scores.count
                        att.withUnsafeMutableBufferPointer { ab in scores.withUnsafeMutableBufferPointer { sb in
                            let sBase = sb.baseAddress!, kBase = kb.baseAddress!, vBase = vb.baseAddress!, aBase = ab.baseAddress!
                            let attend = { (hh: Int) in
                                let S = sBase + (parallel ? hh * perHead : 0)
                                let g = hh / groupSize
                                let kp = kBase + cache.offset(layer: li, group: g)
                                let vp = vBase + cache.offset(layer: li, group: g)
                                let qp = q0 + rowStart[s] * qkvDim + hh * D
                                let op = aBase + rowStart[s] * H * D + hh * D
                                if nNew <= 4 {
                                    // decode: a few rows; plain SIMD loops beat BLAS call overhead
                                    for i in 0..<nNew {
                                        let allowed = start + i + 1
                                        let srow = S + i * len, qi = qp + i * qkvDim, oi = op + i * H * D
                                        for j in 0..<allowed { srow[j] = scale * dot(qi, kp + j * D, count: D) }
                                        softmaxFast(srow, count: allowed)
                                        oi.update(repeating: 0, count: D)
                                        for j in 0..<allowed { axpy(oi, srow[j], vp + j * D, count: D) }
                                    }
                                    return
                                }
                                // S[nNew, len] = scale * Q_h K_g^T
                                Compute.gemm(S, ldc: len, qp, lda: qkvDim, kp, ldb: D, transB: true, m: nNew, n: len, k: D, alpha: scale)
                                for i in 0..<nNew {
                                    let allowed = start + i + 1
                                    let srow = S + i * len
                                    softmaxFast(srow, count: allowed)
                                    for j in allowed..<len { srow[j] = 0 }
                                }
                                // O[nNew, D] = S V_g
                                Compute.gemm(op, ldc: H * D, S, lda: len, vp, ldb: D, transB: false, m: nNew, n: D, k: len)
                            }
                            if parallel { Compute.parallelFor(H, attend) } else { for hh in 0..<H { attend(hh) } }
                        } }
                    } }
                }
            }
            if kvOnly { break }
            // out projection (row-parallel: partial sums, reduce-from, then the bias) + residual
            proj.withUnsafeMutableBufferPointer { pb in att.withUnsafeBufferPointer { ab in
                linear(pb.baseAddress!, ab.baseAddress!, L.outW, nil, rows: n) } }
            try rowParallelFinish(&proj, bias: L.outB, rows: n, tp: tp)
            x.withUnsafeMutableBufferPointer { xb in proj.withUnsafeBufferPointer { pb in addInPlace(xb.baseAddress!, pb.baseAddress!, count: n * C) } }
            // MLP: norm2 -> FC1 (column-parallel)
            try normThenColumnLinear(&ff, scratch: &h, x, L.norm2W, L.norm2B, L.fc1W, L.fc1B, rows: n, outFeatures: ffnOut, tp: tp)
            let mid: [Float]
            switch c.activation {
            // row by row (a row's bits never depend on the rows around it), blocks of rows on the kernels' threads
            case .geluTanh: ff.withUnsafeMutableBufferPointer { fb in let p = fb.baseAddress!; forRowBlocks(n) { r in geluTanhFast(p + r * F, count: F) } }; mid = ff
            case .gelu: ff.withUnsafeMutableBufferPointer { fb in let p = fb.baseAddress!; forRowBlocks(n) { r in geluErf(p + r * F, count: F) } }; mid = ff
            case .swiglu:
                act.withUnsafeMutableBufferPointer { ab in ff.withUnsafeBufferPointer { fb in
                    let a = ab.baseAddress!, f = fb.baseAddress!
                    forRowBlocks(n) { r in siluGateFast(a + r * F, f + r * 2 * F, f + r * 2 * F + F, count: F) } } }
                mid = act
            }
            proj.withUnsafeMutableBufferPointer { pb in mid.withUnsafeBufferPointer { mb in
                linear(pb.baseAddress!, mb.baseAddress!, L.fc2W, nil, rows: n) } }
            try rowParallelFinish(&proj, bias: L.fc2B, rows: n, tp: tp)
            x.withUnsafeMutableBufferPointer { xb in proj.withUnsafeBufferPointer { pb in addInPlace(xb.baseAddress!, pb.baseAddress!, count: n * C) } }
        }
        for (s, k) in counts.enumerated() { caches[s].length += k }
        if !W.shard.isLastStage { return .hidden(x) }

        // Rows that need logits.
        var sel: [Int] = []
        switch logits {
        case .all, .scores: sel = Array(0..<n)
        case .last: for (s, k) in counts.enumerated() where k > 0 { sel.append(rowStart[s] + k - 1) }
        case .none: return .logits(Tensor(zeros: [0, c.vocabSize]))
        }
        var hs = [Float](repeating: 0, count: sel.count * C)
        x.withUnsafeBufferPointer { xb in hs.withUnsafeMutableBufferPointer { hb in
            for (i, r) in sel.enumerated() {
                norm(hb.baseAddress! + i * C, xb.baseAddress! + r * C, W.finalNormW!, W.finalNormB, rows: 1)
            }
        } }
        // vocab-parallel head: local logits [rows, Vp/tp], gather-from -> [rows, Vp], drop padding
        let Vl = W.localVocab, Vp = W.paddedVocab, V = c.vocabSize
        let head = W.lmHead ?? W.wordEmbedding!
        if case .scores(let targets) = logits {
            // 256 rows of local logits at a time: the products are batch-invariant, so chunking changes
            // no bit, and a scoring batch never holds [rows, V/tp] floats at once
            let flat = targets.flatMap { $0 }, chunk = 256
            var out: [Float] = []; out.reserveCapacity(flat.count * 3)
            var local = [Float](repeating: 0, count: min(chunk, sel.count) * Vl)
            for r0 in stride(from: 0, to: sel.count, by: chunk) {
                let rows = min(chunk, sel.count - r0)
                local.withUnsafeMutableBufferPointer { ob in hs.withUnsafeBufferPointer { hb in
                    linear(ob.baseAddress!, hb.baseAddress! + r0 * C, head, nil, rows: rows) } }
                out += try vocabParallelScores(Array(local[0..<(rows * Vl)]), targets: Array(flat[r0..<(r0 + rows)]), tp: tp).data
            }
            return .logits(Tensor(shape: [sel.count, 3], data: out))
        }
        var local = [Float](repeating: 0, count: sel.count * Vl)
        local.withUnsafeMutableBufferPointer { ob in hs.withUnsafeBufferPointer { hb in
            linear(ob.baseAddress!, hb.baseAddress!, head, nil, rows: sel.count) } }
        var full = try Region.gatherFromForward(local, rows: sel.count, localCols: Vl, tp)
        if Vp != V {
            var trimmed = [Float](repeating: 0, count: sel.count * V)
            for r in 0..<sel.count { for j in 0..<V { trimmed[r * V + j] = full[r * Vp + j] } }
            full = trimmed
        }
        return .logits(Tensor(shape: [sel.count, V], data: full))
    }

    /// Vocab-parallel log-softmax of `targets` over local logits [rows, V/tp]: each rank reduces its
    /// slice to (max, first argmax id, sum of exp relative to its max, target logit if it owns it);
    /// the TP group all-gathers those 5 numbers per row and combines them in rank order.
    private func vocabParallelScores(_ local: [Float], targets: [Int], tp: Collective) throws -> Tensor {
        let W = weights, Vl = W.localVocab, V = config.vocabSize, rows = targets.count
        let lo = W.shard.tpRank * Vl, valid = max(0, min(Vl, V - lo))   // padding columns excluded
        var stats = [Float](repeating: 0, count: rows * 5)
        local.withUnsafeBufferPointer { lb in
            for r in 0..<rows {
                let row = lb.baseAddress! + r * Vl
                var m = -Float.infinity, am = -1, sum = 0.0
                if valid > 0 { let st = maxArgmaxSumExp(row, count: valid); m = st.max; am = lo + st.argmax; sum = st.sumExp }
                let t = targets[r] - lo
                let hi = Float(sum)
                stats[r * 5 + 0] = m; stats[r * 5 + 1] = Float(am); stats[r * 5 + 2] = hi; stats[r * 5 + 3] = Float(sum - Double(hi))
                stats[r * 5 + 4] = t >= 0 && t < valid ? row[t] : -.infinity
            }
        }
        let size = tp.size
        var all = [Float](repeating: 0, count: size * rows * 5)      // [rank][row][5]
        try stats.withUnsafeBufferPointer { sb in try all.withUnsafeMutableBufferPointer { try tp.allGather(sb, into: $0) } }
        var out = [Float](repeating: 0, count: rows * 3)
        for r in 0..<rows {
            var gmax = -Float.infinity, arg = -1, target = -Float.infinity
            for k in 0..<size {
                let st = (k * rows + r) * 5
                if all[st] > gmax { gmax = all[st]; arg = Int(all[st + 1]) }
                if all[st + 4] > -.infinity { target = all[st + 4] }
            }
            var total = 0.0
            for k in 0..<size {
                let st = (k * rows + r) * 5
                if all[st] > -.infinity { total += (Double(all[st + 2]) + Double(all[st + 3])) * Double(expf(all[st] - gmax)) }
            }
            let lp = Double(target) - (Double(gmax) + log(total))
            let hi = Float(lp)
            out[r * 3] = hi; out[r * 3 + 1] = Float(lp - Double(hi)); out[r * 3 + 2] = arg == targets[r] ? 1 : 0
        }
        return Tensor(shape: [rows, 3], data: out)
    }

    /// norm -> copy-to (identity forward) -> column-parallel linear: y[n, out] = W norm(x) (+ b).
    private func normThenColumnLinear(_ y: inout [Float], scratch h: inout [Float], _ x: [Float], _ g: [Float], _ beta: [Float]?,
                                      _ w: WeightMatrix, _ b: [Float]?, rows n: Int, outFeatures: Int, tp: Collective) throws {
        x.withUnsafeBufferPointer { xb in h.withUnsafeMutableBufferPointer { hb in norm(hb.baseAddress!, xb.baseAddress!, g, beta, rows: n) } }
        try h.withUnsafeMutableBufferPointer { try Region.copyToForward($0, tp) }
        precondition(w.rows == outFeatures && w.cols == config.hiddenSize)
        y.withUnsafeMutableBufferPointer { yb in h.withUnsafeBufferPointer { hb in withOptional(b) { bp in
            linear(yb.baseAddress!, hb.baseAddress!, w, bp, rows: n) } } }
    }

    /// Row-parallel tail: reduce the partial sums over the TP group, then add the (replicated) bias once.
    private func rowParallelFinish(_ y: inout [Float], bias: [Float]?, rows n: Int, tp: Collective) throws {
        try y.withUnsafeMutableBufferPointer { try Region.reduceFromForward($0, tp) }
        if let bias {
            let C = config.hiddenSize
            y.withUnsafeMutableBufferPointer { yb in bias.withUnsafeBufferPointer { bb in
                for r in 0..<n { addInPlace(yb.baseAddress! + r * C, bb.baseAddress!, count: C) } } }
        }
    }

    @inline(__always)
    private func norm(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ g: [Float], _ b: [Float]?, rows: Int) {
        let c = config, C = c.hiddenSize
        g.withUnsafeBufferPointer { gb in
            let gp = gb.baseAddress!
            if c.norm == .rmsnorm {
                forRowBlocks(rows) { r in rmsNorm(out + r * C, x + r * C, gp, rows: 1, dim: C, eps: c.normEpsilon) }
            } else {
                withOptional(b) { bp in forRowBlocks(rows) { r in layerNorm(out + r * C, x + r * C, gp, bp, rows: 1, dim: C, eps: c.normEpsilon) } }
            }
        }
    }
}

/// body(r) for every row r < n, in blocks of 16 rows on the kernels' threads.
func forRowBlocks(_ n: Int, _ body: (Int) -> Void) {
    let block = 16
    Compute.parallelFor((n + block - 1) / block) { b in for r in (b * block)..<min(n, (b + 1) * block) { body(r) } }
}

@inline(__always)
func withOptional<R>(_ a: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0.baseAddress!) } }
    return body(nil)
}
