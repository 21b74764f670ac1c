// The layers' named variants against the layer they vary: attention's decode path (SIMD dot/axpy
// per row) against its products, and the head's chunked scoring against its cross-entropy.

import XCTest
import TensorCore
import Collectives
@testable import Model

final class LayerTests: XCTestCase {
    func values(_ n: Int, seed: Float) -> [Float] { (0..<n).map { sin(Float($0) * seed + seed) } }

    func testDecodeAttentionEqualsProducts() {
        // on every instruction set the CPU has (the kernels give the same bits on each)
        let cpu = Compute.limitISA(.avx512)
        defer { Compute.limitISA(cpu) }
        for isa in [Compute.ISA.portable, .avx2, .avx512] where isa.rawValue <= cpu.rawValue {
            Compute.limitISA(isa)
            decodeAttentionEqualsProducts()
        }
    }

    func decodeAttentionEqualsProducts() {
        for (D, start, rows) in [(16, 0, 1), (16, 5, 3), (16, 30, 4), (20, 13, 2), (64, 150, 1), (64, 7, 4)] {
            let ld = 2 * D + 8
            let len = start + rows
            let q = values(rows * ld, seed: 0.37), k = values(len * ld, seed: 0.53), v = values(len * ld, seed: 0.71)
            var o1 = [Float](repeating: 0, count: rows * D), o2 = o1, s1 = [Float](repeating: 0, count: rows * len), s2 = s1
            Attention.attendProducts(&o1, ldo: D, q, ldq: ld, k, v, ldkv: ld, scores: &s1, start: start, rows: rows, headDim: D, scale: 0.25)
            Attention.attendRows(&o2, ldo: D, q, ldq: ld, k, v, ldkv: ld, scores: &s2, start: start, rows: rows, headDim: D, scale: 0.25)
            // bit for bit: a continuation scored after a cached context gets the bits of one whole prefill
            XCTAssertEqual(o1.map(\.bitPattern), o2.map(\.bitPattern), "start \(start), rows \(rows)")
            XCTAssertGreaterThan(o1.map(abs).max()!, 0.01, "a non-trivial output")
        }
    }

    /// Attention over several sequences' caches: every (sequence, head) task gives the same bits whether
    /// the scores scratch holds them all (one parallel wave), a few at a time (several waves) or only one
    /// (one wave per task); and the caches receive the same keys and values.
    func testAttentionWavesGiveTheSameBits() throws {
        let H = 4, G = 2, D = 8, att = Attention(heads: H, groups: G, headDim: D), Q = att.qkvDim
        let prior = [3, 0, 7], counts = [5, 2, 1]   // cached tokens and new rows per sequence
        var rows: [SequenceRows] = [], r = 0
        for (p, c) in zip(prior, counts) { rows.append(SequenceRows(row: r, count: c, start: p)); r += c }
        let qkv = values(r * Q, seed: 0.41)
        let largest = zip(prior, counts).map { ($0 + $1) * $1 }.max()!, all = H * zip(prior, counts).reduce(0) { $0 + ($1.0 + $1.1) * $1.1 }
        for storage in [KVStorage.float32, .float16] {
            var outputs: [[Float]] = [], cacheKeys: [[Float]] = []
            for size in [all, 3 * largest, largest] {
                let caches = try zip(prior, counts).map { p, c -> KVCache in
                    let cache = try KVCache(layers: 1, groups: G, headDim: D, capacity: 16, storage: storage)
                    for (base, seed) in [(cache.k, 0.23), (cache.v, 0.29)] {
                        for (i, x) in values(G * 16 * D, seed: Float(seed)).enumerated() {
                            if storage == .float32 { base.assumingMemoryBound(to: Float.self)[i] = x }
                            else { base.assumingMemoryBound(to: UInt16.self)[i] = Float16(x).bitPattern }
                        }
                    }
                    cache.length = p
                    return cache
                }
                var out = [Float](repeating: 0, count: r * H * D), scratch = [Float](repeating: 0, count: size)
                try out.withUnsafeMutableBufferPointer { o in
                    try att.forward(o.baseAddress!, qkv, sequences: rows, keys: .caches(caches, layer: 0), probs: nil, scratch: &scratch)
                }
                outputs.append(out); cacheKeys.append(caches.flatMap { $0.contents() })
            }
            XCTAssertGreaterThan(outputs[0].map(abs).max()!, 0.01, "a non-trivial output")
            for i in 1..<outputs.count {
                XCTAssertEqual(outputs[i].map(\.bitPattern), outputs[0].map(\.bitPattern), "\(storage): scratch size \(i)")
                XCTAssertEqual(cacheKeys[i], cacheKeys[0])
            }
        }
    }

    /// The scoring variant's log-probs sum to minus the cross-entropy loss of the same rows, and its
    /// greedy flags are the argmax; the cross-entropy's dlogits rows sum to 0 (softmax minus one-hot).
    func testHeadScoresEqualCrossEntropy() throws {
        let V = 37, C = 8, n = 5
        let head = VocabParallelHead(weight: WeightMatrix(values(V * C, seed: 0.9), rows: V, cols: C), vocab: V, first: 0)
        var h = values(n * C, seed: 1.7)
        let targets = [3, 0, 36, 17, 17]
        let scores = try head.scores(&h, targets: targets, tp: SingleRank())
        let logits = try head.logits(&h, rows: n, tp: SingleRank())
        var local = logits
        let loss = try local.withUnsafeMutableBufferPointer {
            try head.crossEntropy($0.baseAddress!, targets: targets, counts: [Bool](repeating: true, count: n), weight: 1, tp: SingleRank())
        }
        var sum = 0.0
        for r in 0..<n {
            let lp = Double(scores[r * 3]) + Double(scores[r * 3 + 1])
            sum += lp
            let row = Array(logits[(r * V)..<((r + 1) * V)])
            let lse = log(row.map { exp(Double($0)) }.reduce(0, +))
            XCTAssertEqual(lp, Double(row[targets[r]]) - lse, accuracy: 1e-5, "row \(r) against a double-precision log-softmax")
            XCTAssertEqual(scores[r * 3 + 2] == 1, row.firstIndex(of: row.max()!)! == targets[r], "row \(r) greedy flag")
            XCTAssertEqual(local[(r * V)..<((r + 1) * V)].reduce(0, +), 0, accuracy: 1e-5, "row \(r) dlogits sum")
        }
        XCTAssertEqual(loss, -sum, accuracy: 1e-5 * abs(sum))
    }
}
