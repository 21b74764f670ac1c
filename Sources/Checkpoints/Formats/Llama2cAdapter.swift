// Llama2cAdapter: llama2.c's legacy checkpoint (`run.c` format) -> CanonicalCheckpoint.
//
// File: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative =
// unshared classifier), seq_len), then f32 tensors in run.c's order: token_embedding [V, C],
// rms_att [L, C], wq [L, H*D, C], wk [L, G*D, C], wv [L, G*D, C], wo [L, C, H*D], rms_ffn [L, C],
// w1 [L, F, C], w2 [L, C, F], w3 [L, F, C], rms_final [C], freq_cis_real/imag [P, D/2] (skipped),
// wcls [V, C] when unshared. run.c rotates interleaved pairs (2j, 2j+1); the canonical model rotates
// halves (j, j+D/2), so q and k rows are permuted here, once.

import Foundation
import TensorCore
import Model

public enum Llama2cError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case badHeader(path: String, reason: String)
    case sizeMismatch(path: String, expectedBytes: Int, foundBytes: Int)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): return "\(p): cannot read llama2.c checkpoint: \(r)"
        case .badHeader(let p, let r): return "\(p): not a llama2.c checkpoint: \(r)"
        case .sizeMismatch(let p, let e, let f): return "\(p): llama2.c checkpoint should be \(e) bytes for its header, found \(f) (truncated or another format)"
        }
    }
}

public enum Llama2cAdapter {
    public static func load(_ url: URL) throws -> CanonicalCheckpoint {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw Llama2cError.unreadable(path: url.path, reason: plainReason(error))
        }
        return try load(data: data, url: url)
    }

    /// The checkpoint in `data` (a whole file's bytes); `url` names it in errors.
    public static func load(data: Data, url: URL) throws -> CanonicalCheckpoint {
        guard data.count >= 28 else { throw Llama2cError.badHeader(path: url.path, reason: "file has \(data.count) bytes, header needs 28") }
        return try data.withUnsafeBytes { raw -> CanonicalCheckpoint in
            let base = raw.baseAddress!
            let h = (0..<7).map { Int(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            let (dim, hidden, L, H, G, vSigned, P) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6])
            guard dim > 0, hidden > 0, L > 0, H > 0, G > 0, vSigned != 0, P > 0, dim % H == 0, H % G == 0 else {
                throw Llama2cError.badHeader(path: url.path, reason: "header \(h) is not a valid (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len)")
            }
            let shared = vSigned > 0, V = abs(vSigned), D = dim / H, kv = G * D
            // every size from the header is checked before it is multiplied: a header of 2^30 dims must
            // be refused, not overflow; the total must then equal the file size
            func mul(_ xs: Int...) throws -> Int {
                var acc = 1
                for x in xs {
                    let (r, o) = acc.multipliedReportingOverflow(by: x)
                    guard !o, r <= Int.max / 8 else { throw Llama2cError.sizeMismatch(path: url.path, expectedBytes: -1, foundBytes: data.count) }
                    acc = r
                }
                return acc
            }
            let counts: [Int]
            do {
                counts = [try mul(V, dim), try mul(L, dim), try mul(L, dim, dim), try mul(L, kv, dim), try mul(L, kv, dim), try mul(L, dim, dim),
                          try mul(L, dim), try mul(L, hidden, dim), try mul(L, dim, hidden), try mul(L, hidden, dim), dim,
                          try mul(P, D) / 2, try mul(P, D) / 2] + (shared ? [] : [try mul(V, dim)])
            } catch {
                throw Llama2cError.badHeader(path: url.path, reason: "header \(h) describes a model too large to address (its sizes overflow)")
            }
            var total = 0
            for c in counts {
                let (r, o) = total.addingReportingOverflow(c)
                guard !o, r <= Int.max / 8 else {
                    throw Llama2cError.badHeader(path: url.path, reason: "header \(h) describes a model too large to address (its sizes overflow)")
                }
                total = r
            }
            let expected = 28 + 4 * total
            guard data.count == expected else { throw Llama2cError.sizeMismatch(path: url.path, expectedBytes: expected, foundBytes: data.count) }
            var offset = 28
            func next(_ n: Int) -> [Float] {
                let out = decodeToFloat(base + offset, dtype: .float32, count: n)
                offset += 4 * n
                return out
            }
            let emb = next(counts[0]), rmsAtt = next(counts[1]), wq = next(counts[2]), wk = next(counts[3]), wv = next(counts[4])
            let wo = next(counts[5]), rmsFfn = next(counts[6]), w1 = next(counts[7]), w2 = next(counts[8]), w3 = next(counts[9])
            let rmsFinal = next(counts[10]); _ = next(counts[11]); _ = next(counts[12])
            let wcls = shared ? nil : next(V * dim)

            let config = ModelConfig(vocabSize: V, hiddenSize: dim, numLayers: L, numHeads: H, numKVHeads: G, headDim: D,
                                     ffnSize: hidden, maxPositions: P, norm: .rmsnorm, normEpsilon: 1e-5, activation: .swiglu,
                                     positions: .rope, ropeTheta: 10000, tiedEmbeddings: shared, linearBias: false,
                                     bosToken: 1, eosToken: 2)
            var t: [String: Tensor] = ["embedding.word.weight": Tensor(shape: [V, dim], data: emb),
                                       "final_norm.weight": Tensor(shape: [dim], data: rmsFinal)]
            if let wcls { t["lm_head.weight"] = Tensor(shape: [V, dim], data: wcls) }
            func layer(_ a: [Float], _ i: Int, _ shape: [Int]) -> Tensor {
                let n = shape.reduce(1, *)
                return Tensor(shape: shape, data: Array(a[(i * n)..<((i + 1) * n)]))
            }
            for i in 0..<L {
                let p = "layers.\(i)."
                t[p + "norm1.weight"] = layer(rmsAtt, i, [dim])
                t[p + "attn.q.weight"] = interleavedToHalf(layer(wq, i, [dim, dim]), heads: H, headDim: D)
                t[p + "attn.k.weight"] = interleavedToHalf(layer(wk, i, [kv, dim]), heads: G, headDim: D)
                t[p + "attn.v.weight"] = layer(wv, i, [kv, dim])
                t[p + "attn.out.weight"] = layer(wo, i, [dim, dim])
                t[p + "norm2.weight"] = layer(rmsFfn, i, [dim])
                t[p + "mlp.gate.weight"] = layer(w1, i, [hidden, dim])
                t[p + "mlp.fc2.weight"] = layer(w2, i, [dim, hidden])
                t[p + "mlp.up.weight"] = layer(w3, i, [hidden, dim])
            }
            let ckpt = CanonicalCheckpoint(config: config, tensors: t, format: "llama2c")
            try ckpt.validate()
            try WeightChecks.refuseNonFinite(t, file: url.path)
            return ckpt
        }
    }

    /// Rows of each head reordered from interleaved pairs (2j, 2j+1) to halves (j, j + D/2).
    static func interleavedToHalf(_ w: Tensor, heads: Int, headDim d: Int) -> Tensor {
        let cols = w.shape[1]
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for j in 0..<(d / 2) {
                for (src, dst) in [(2 * j, j), (2 * j + 1, j + d / 2)] {
                    let s = (h * d + src) * cols, o = (h * d + dst) * cols
                    for c in 0..<cols { out[o + c] = w.data[s + c] }
                }
            }
        }
        return Tensor(shape: w.shape, data: out)
    }
}
