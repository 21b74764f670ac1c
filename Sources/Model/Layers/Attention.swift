// Attention: causal self-attention with grouped-query heads and rotary positions over one rank's
// heads, forward and backward. Rows of several sequences are stacked; the fused QKV buffer holds,
// per row, [Q (H*D) | K (G*D) | V (G*D)] of this rank's H heads and G groups (qkvDim = (H+2G)*D).
//
// Keys and values are read either from the sequences' caches (inference: the new rows' K and V are
// appended to each `KVCache` first) or from the QKV rows of the batch itself (training: every
// sequence starts at position 0). Per (sequence, head):
//   reference  S[n, len] = scale * Q K^T (a product), causal softmax, O = S V (a product)
//   decode     the same with SIMD dot/axpy per row: a few new rows (decode), where a product's setup dominates
// Training keeps every head's probabilities S for the backward:
//   dP = dO V^T, dS = S * (dP - rowsum(S * dP)) * scale, dQ = dS K, dK += dS^T Q, dV += S^T dO.
// Masked positions are excluded from the softmax entirely, which equals Megatron's -10000 fill and
// HF's finfo.min fill in f32.

import TensorCore
import CKernels

/// One sequence's rows in a stacked batch: `count` new rows from row `row`, at positions start ..< start + count.
public struct SequenceRows: Sendable {
    public let row: Int, count: Int, start: Int
    public init(row: Int, count: Int, start: Int) { self.row = row; self.count = count; self.start = start }
    public var length: Int { start + count }
}

public struct Attention {
    public let heads: Int, groups: Int, headDim: Int
    public var qkvDim: Int { (heads + 2 * groups) * headDim }
    var groupSize: Int { heads / groups }
    var scale: Float { 1 / Float(headDim).squareRoot() }

    public init(heads: Int, groups: Int, headDim: Int) { self.heads = heads; self.groups = groups; self.headDim = headDim }

    /// Where keys and values are read from.
    public enum Keys {
        case caches([KVCache], layer: Int)   // inference: appended to each sequence's cache, then read from it
        case batch                           // training: the batch's own QKV rows (every sequence starts at 0)
    }

    /// Rotates Q and K of every row of qkv [n, qkvDim] for its position (`inverse`: the backward).
    public func rope(_ qkv: UnsafeMutablePointer<Float>, positions: [Int], _ rot: RotaryTable, inverse: Bool = false) {
        let H = heads, G = groups, D = headDim, Q = qkvDim
        for (r, pos) in positions.enumerated() {
            rot.apply(qkv + r * Q, heads: H, pos: pos, inverse: inverse)
            rot.apply(qkv + r * Q + H * D, heads: G, pos: pos, inverse: inverse)
        }
    }

    /// att[n, H*D] for every sequence's new rows. `probs` (training) receives every head's
    /// probabilities, sequence after sequence, [H][count][length] each; otherwise `scratch` holds them.
    /// With `kvOnly` the new keys and values are cached and nothing is attended. Every (sequence, head)
    /// is one task on the kernels' threads, in waves of tasks whose scores fit in `scratch` together (one
    /// wave when `probs` is given); each task's bits are the same however they are grouped.
    public func forward(_ att: UnsafeMutablePointer<Float>, _ qkv: UnsafePointer<Float>, sequences: [SequenceRows], keys: Keys,
                        probs: UnsafeMutablePointer<Float>?, scratch: inout [Float], kvOnly: Bool = false) throws {
        let H = heads, G = groups, D = headDim, Q = qkvDim, HD = H * D, per = groupSize, scale = scale
        if case .caches(let caches, let layer) = keys {   // the new rows' keys and values, appended to each cache
            for (s, seq) in sequences.enumerated() where seq.count > 0 {
                let cache = caches[s]
                for i in 0..<seq.count {
                    let row = qkv + (seq.row + i) * Q
                    for g in 0..<G {
                        let at = cache.offset(layer: layer, group: g) + (seq.start + i) * D
                        let (kNew, vNew) = (row + H * D + g * D, row + (H + G) * D + g * D)
                        switch cache.storage {
                        case .float32:
                            (cache.k.assumingMemoryBound(to: Float.self) + at).update(from: kNew, count: D)
                            (cache.v.assumingMemoryBound(to: Float.self) + at).update(from: vNew, count: D)
                        case .float16:   // rounded once, here
                            let over = tk_f32_to_f16(cache.k.assumingMemoryBound(to: UInt16.self) + at, kNew, D)
                                + tk_f32_to_f16(cache.v.assumingMemoryBound(to: UInt16.self) + at, vNew, D)
                            if over > 0 {
                                let big = (0..<D).map { max(abs(kNew[$0]), abs(vNew[$0])) }.filter(\.isFinite).max() ?? 0
                                throw DecoderError(description: "layer \(layer), sequence \(s), position \(seq.start + i): a key or value of magnitude \(big) "
                                    + "is beyond float16's range (65504), the KV cache of a bf16 model; run it with --dtype float32")
                            }
                        }
                    }
                }
            }
        }
        if kvOnly { return }
        var tasks: [(s: Int, h: Int, scores: Int)] = []   // scores: the offset of the task's [count, length] slice
        var total = 0
        for (s, seq) in sequences.enumerated() where seq.count > 0 {
            for h in 0..<H { tasks.append((s, h, total)); total += seq.count * seq.length }
        }
        // a task whose float16 keys cannot be widened for want of memory marks its slot (the forward then throws)
        var unwidened = [Bool](repeating: false, count: tasks.count)
        unwidened.withUnsafeMutableBufferPointer { failed in scratch.withUnsafeMutableBufferPointer { sb in
            var base = 0   // the scores offset of the wave's first task
            func run(_ t: Int) {
                let (s, h, off) = tasks[t], seq = sequences[s], g = h / per
                let S = probs.map { $0 + off } ?? sb.baseAddress! + (off - base)
                let q = qkv + seq.row * Q + h * D, o = att + seq.row * HD + h * D
                func attend(_ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ ld: Int) {
                    if probs == nil && seq.count <= 4 {
                        Self.attendRows(o, ldo: HD, q, ldq: Q, k, v, ldkv: ld, scores: S, start: seq.start, rows: seq.count, headDim: D, scale: scale)
                    } else {
                        Self.attendProducts(o, ldo: HD, q, ldq: Q, k, v, ldkv: ld, scores: S, start: seq.start, rows: seq.count, headDim: D, scale: scale)
                    }
                }
                switch keys {
                case .batch:
                    precondition(seq.start == 0, "attention over the batch's own keys starts at position 0")
                    attend(qkv + seq.row * Q + H * D + g * D, qkv + seq.row * Q + (H + G) * D + g * D, Q)
                case .caches(let caches, let layer):
                    let cache = caches[s], at = cache.offset(layer: layer, group: g)
                    switch cache.storage {
                    case .float32:
                        attend(cache.k.assumingMemoryBound(to: Float.self) + at, cache.v.assumingMemoryBound(to: Float.self) + at, D)
                    case .float16:   // this group's rows widened (exactly) into this thread's buffers
                        guard let kw = tk_f16_rows(cache.k.assumingMemoryBound(to: UInt16.self) + at, D, seq.length, D, 0),
                              let vw = tk_f16_rows(cache.v.assumingMemoryBound(to: UInt16.self) + at, D, seq.length, D, 1) else {
                            failed[t] = true; return
                        }
                        attend(kw, vw, D)
                    }
                }
            }
            if probs != nil { Compute.parallelFor(tasks.count, run); return }
            var first = 0
            while first < tasks.count {
                base = tasks[first].scores
                var end = first + 1
                while end < tasks.count && (end + 1 < tasks.count ? tasks[end + 1].scores : total) - base <= sb.count { end += 1 }
                let need = (end < tasks.count ? tasks[end].scores : total) - base
                precondition(need <= sb.count, "attention scratch of \(sb.count) floats is smaller than one (sequence, head)'s \(need) scores")
                Compute.parallelFor(end - first) { run(first + $0) }
                first = end
            }
        } }
        if let t = unwidened.firstIndex(of: true) {
            throw DecoderError(description: "attention: no memory to widen the \(sequences[tasks[t].s].length) cached positions of sequence \(tasks[t].s)")
        }
    }

    /// Reference: S[rows, len] = scale * q k^T, causal softmax (row i sees keys 0 ... start + i, the
    /// rest of the row 0), o[rows, D] = S v.
    public static func attendProducts(_ o: UnsafeMutablePointer<Float>, ldo: Int, _ q: UnsafePointer<Float>, ldq: Int,
                                      _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, ldkv: Int, scores S: UnsafeMutablePointer<Float>,
                                      start: Int, rows: Int, headDim D: Int, scale: Float) {
        let len = start + rows
        Compute.gemm(S, ldc: len, q, lda: ldq, k, ldb: ldkv, transB: true, m: rows, n: len, k: D, alpha: scale)
        for i in 0..<rows {
            let allowed = start + i + 1, srow = S + i * len
            softmaxFast(srow, count: allowed)
            for j in allowed..<len { srow[j] = 0 }
        }
        Compute.gemm(o, ldc: ldo, S, lda: len, v, ldb: ldkv, transB: false, m: rows, n: D, k: len)
    }

    /// Decode variant of `attendProducts`, for a few new rows, where a product's setup (packing the keys)
    /// costs more than its work. Bit for bit the same result: each score is one FMA chain over the head
    /// dimension in order, then scaled, and each output element one FMA chain over the keys in order, as
    /// every element of Turing's products is (`Sources/C/CKernels`); the softmax is the same function. So a
    /// continuation scored after a cached context gets the bits it gets inside one whole prefill.
    /// `S` needs one row of len.
    public static func attendRows(_ o: UnsafeMutablePointer<Float>, ldo: Int, _ q: UnsafePointer<Float>, ldq: Int,
                                  _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, ldkv: Int, scores S: UnsafeMutablePointer<Float>,
                                  start: Int, rows: Int, headDim D: Int, scale: Float) {
        let len = start + rows
        for i in 0..<rows {
            let allowed = start + i + 1
            let srow = S + i * len, qi = q + i * ldq, oi = o + i * ldo
            orderedScores(srow, qi, k, ldk: ldkv, keys: allowed, headDim: D, scale: scale)
            softmaxFast(srow, count: allowed)
            orderedWeightedSum(oi, srow, v, ldv: ldkv, keys: allowed, headDim: D)
        }
    }

    /// s[j] = scale * (q . k_j), the dot one FMA chain over d in order (`tk_dot_rows`).
    static func orderedScores(_ s: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, ldk: Int,
                              keys n: Int, headDim D: Int, scale: Float) {
        tk_dot_rows(s, q, k, ldk, n, D, scale)
    }

    /// o[d] = sum over j of p[j] * v_j[d], each element one FMA chain over j in order (`tk_weighted_sum`).
    static func orderedWeightedSum(_ o: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, _ v: UnsafePointer<Float>, ldv: Int,
                                   keys n: Int, headDim D: Int) {
        tk_weighted_sum(o, p, v, ldv, n, D)
    }

    /// Backward over the batch's own keys (training): dqkv [n, qkvDim] (overwritten) from datt [n, H*D],
    /// the forward's qkv (after rope) and probabilities. One task per (sequence, group): it alone
    /// writes that group's dK/dV rows and its heads' dQ.
    public func backward(_ dqkv: UnsafeMutablePointer<Float>, datt: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                         probs: UnsafePointer<Float>, sequences: [SequenceRows]) {
        let H = heads, G = groups, D = headDim, Q = qkvDim, HD = H * D, per = groupSize, scale = scale
        let n = sequences.reduce(0) { $0 + $1.count }
        dqkv.update(repeating: 0, count: n * Q)
        var bases: [Int] = [], b = 0
        for s in sequences { bases.append(b); b += H * s.count * s.length }
        Compute.parallelFor(sequences.count * G) { task in
            let s = task / G, g = task % G, seq = sequences[s], T = seq.count
            precondition(seq.start == 0)
            let q0 = qkv + seq.row * Q, d0 = dqkv + seq.row * Q
            let k = q0 + H * D + g * D, v = q0 + (H + G) * D + g * D
            let dk = d0 + H * D + g * D, dv = d0 + (H + G) * D + g * D
            var dpBuf = [Float](repeating: 0, count: T * T)
            dpBuf.withUnsafeMutableBufferPointer { dpb in
                let dP = dpb.baseAddress!
                for h in (g * per)..<((g + 1) * per) {
                    let P = probs + bases[s] + h * T * T, dO = datt + seq.row * HD + h * D
                    // dP = dO V^T
                    Compute.gemm(dP, ldc: T, dO, lda: HD, v, ldb: Q, transB: true, m: T, n: T, k: D)
                    for i in 0..<T {
                        let p = P + i * T, d = dP + i * T
                        var sum: Float = 0
                        for j in 0...i { sum += p[j] * d[j] }
                        for j in 0...i { d[j] = p[j] * (d[j] - sum) * scale }
                        for j in (i + 1)..<T { d[j] = 0 }
                    }
                    // dQ_h = dS K_g;  dK_g += dS^T Q_h;  dV_g += P^T dO_h
                    Compute.gemm(d0 + h * D, ldc: Q, dP, lda: T, k, ldb: Q, transB: false, m: T, n: D, k: T)
                    Compute.gemmTA(dk, ldc: Q, dP, lda: T, q0 + h * D, ldb: Q, m: T, n: D, k: T, beta: 1)
                    Compute.gemmTA(dv, ldc: Q, P, lda: T, dO, ldb: HD, m: T, n: D, k: T, beta: 1)
                }
            }
        }
    }
}
