import XCTest
@testable import TensorCore
import CKernels

/// The kernels against a plain double-precision loop, and the invariances ckernels.h promises:
/// a row's result is bit-identical alone or in any batch, at any thread count, on every ISA.
final class ComputeTests: XCTestCase {
    struct LCG { var s: UInt64; mutating func next() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 1000 } }
    func random(_ n: Int, seed: UInt64) -> [Float] { var g = LCG(s: seed); return (0..<n).map { _ in g.next() } }

    func reference(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { var s = 0.0; for p in 0..<k { s += Double(x[i * k + p]) * Double(w[j * k + p]) }; out[i * n + j] = s } }
        return out
    }

    func linearOut(_ x: [Float], _ w: WeightMatrix, bias: [Float]? = nil, rows m: Int) -> [Float] {
        var y = [Float](repeating: .nan, count: m * w.rows)
        y.withUnsafeMutableBufferPointer { yb in x.withUnsafeBufferPointer { xb in
            if let bias { bias.withUnsafeBufferPointer { linear(yb.baseAddress!, xb.baseAddress!, w, $0.baseAddress!, rows: m) } }
            else { linear(yb.baseAddress!, xb.baseAddress!, w, nil, rows: m) }
        } }
        return y
    }

    /// Odd shapes (tails in rows, columns and k) against doubles; bias added.
    func testLinearMatchesReference() {
        for (m, n, k) in [(1, 1, 1), (3, 33, 17), (13, 70, 100), (29, 65, 257), (1, 300, 64)] {
            let x = random(m * k, seed: 1), wv = random(n * k, seed: 2), b = random(n, seed: 3)
            let y = linearOut(x, WeightMatrix(wv, rows: n, cols: k), bias: b, rows: m)
            let r = reference(x, wv, m: m, n: n, k: k)
            for i in 0..<(m * n) { XCTAssertEqual(Double(y[i]), r[i] + Double(b[i % n]), accuracy: 1e-4 * Double(k).squareRoot(), "\(m)x\(n)x\(k) at \(i)") }
        }
    }

    /// bf16 weights: the product equals the f32 product of the bf16-rounded weights, bit for bit.
    func testBF16WeightsEqualRoundedF32() {
        let m = 7, n = 45, k = 77
        let x = random(m * k, seed: 4), wv = random(n * k, seed: 5)
        let w16 = WeightMatrix(wv, rows: n, cols: k, dtype: .bfloat16)
        XCTAssertEqual(w16.dtype, .bfloat16)
        let rounded = w16.floats
        XCTAssertNotEqual(rounded, wv)
        for (a, b) in zip(rounded, wv) { XCTAssertEqual(a, b, accuracy: abs(b) / 128) }
        XCTAssertEqual(linearOut(x, w16, rows: m), linearOut(x, WeightMatrix(rounded, rows: n, cols: k), rows: m))
        var row = [Float](repeating: 0, count: k)
        row.withUnsafeMutableBufferPointer { w16.copyRow(3, into: $0.baseAddress!) }
        XCTAssertEqual(row, Array(rounded[(3 * k)..<(4 * k)]))
    }

    /// A matrix built from bf16 values as stored equals one narrowed from f32: same packed values, same products.
    func testBF16SourceEqualsNarrowedF32() {
        let m = 5, n = 40, k = 33
        let x = random(m * k, seed: 15), wv = random(n * k, seed: 16)
        var raw = [UInt16](repeating: 0, count: wv.count)
        raw.withUnsafeMutableBufferPointer { r in wv.withUnsafeBufferPointer { tk_f32_to_bf16(r.baseAddress, $0.baseAddress, wv.count) } }
        let a = WeightMatrix(bf16: raw, rows: n, cols: k), b = WeightMatrix(wv, rows: n, cols: k, dtype: .bfloat16)
        XCTAssertEqual(a.floats, b.floats)
        XCTAssertEqual(linearOut(x, a, rows: m), linearOut(x, b, rows: m))
    }

    /// Each row alone, every batch size, two thread counts: identical bits.
    func testRowsAreBatchAndThreadInvariant() {
        let m = 50, n = 200, k = 300
        let x = random(m * k, seed: 6), w = WeightMatrix(random(n * k, seed: 7), rows: n, cols: k)
        let whole = linearOut(x, w, rows: m)
        let saved = Compute.threads
        defer { Compute.setThreads(saved) }
        for threads in [1, 2, 3] {
            Compute.setThreads(threads)
            for start in [0, 11, 49] {
                for count in [1, 2, 13] where start + count <= m {
                    let part = linearOut(Array(x[(start * k)..<((start + count) * k)]), w, rows: count)
                    XCTAssertEqual(part, Array(whole[(start * n)..<((start + count) * n)]), "rows \(start)..<\(start + count), \(threads) threads")
                }
            }
        }
    }

    /// AVX2 and portable C give the same bits as the best ISA (the order of the sums is the same).
    func testEveryISAGivesTheSameBits() {
        let m = 17, n = 70, k = 130
        let x = random(m * k, seed: 8), wv = random(n * k, seed: 9)
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        for dtype in ComputeDType.allCases {
            let w = WeightMatrix(wv, rows: n, cols: k, dtype: dtype)
            Compute.limitISA(best); let a = linearOut(x, w, rows: m)
            for isa in [Compute.ISA.avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
                XCTAssertEqual(Compute.limitISA(isa), isa)
                XCTAssertEqual(linearOut(x, w, rows: m), a, "\(isa) \(dtype)")
            }
        }
    }

    /// The general products: C = A B, C = A B^T, C = A^T B, with alpha and beta, against doubles.
    func testGeneralProducts() {
        let m = 19, n = 37, k = 23
        let a = random(m * k, seed: 10), b = random(k * n, seed: 11), bt = random(n * k, seed: 12), at = random(k * m, seed: 13)
        let c0 = random(m * n, seed: 14)
        func check(_ c: [Float], _ f: (Int, Int) -> Double, _ what: String) {
            for i in 0..<m { for j in 0..<n { XCTAssertEqual(Double(c[i * n + j]), f(i, j), accuracy: 1e-4, "\(what) \(i),\(j)") } }
        }
        var c = c0
        c.withUnsafeMutableBufferPointer { Compute.gemm($0.baseAddress!, ldc: n, a, lda: k, b, ldb: n, transB: false, m: m, n: n, k: k, alpha: 0.5, beta: 2) }
        check(c, { i, j in 0.5 * (0..<k).reduce(0.0) { $0 + Double(a[i * k + $1]) * Double(b[$1 * n + j]) } + 2 * Double(c0[i * n + j]) }, "NN")
        c = c0
        c.withUnsafeMutableBufferPointer { Compute.gemm($0.baseAddress!, ldc: n, a, lda: k, bt, ldb: k, transB: true, m: m, n: n, k: k) }
        check(c, { i, j in (0..<k).reduce(0.0) { $0 + Double(a[i * k + $1]) * Double(bt[j * k + $1]) } }, "NT")
        c = c0
        c.withUnsafeMutableBufferPointer { Compute.gemmTA($0.baseAddress!, ldc: n, at, lda: m, b, ldb: n, m: m, n: n, k: k) }
        check(c, { i, j in (0..<k).reduce(0.0) { $0 + Double(at[$1 * m + i]) * Double(b[$1 * n + j]) } + Double(c0[i * n + j]) }, "TN")
    }

    /// What ckernels.h promises, bit for bit: each element is one FMA chain over k in order from 0, then the
    /// epilogue (alpha, bias, beta). On the shapes that take the other paths: A stored transposed (packed per
    /// call, row blocks first when A is larger than B), and k deep enough to run in passes (sums stored raw
    /// between them), and A too large for a core's cache (blocks of rows); on every ISA and at 1 to 3 threads.
    func testEveryProductIsOneFMAChainInOrder() {
        func chain(_ a: (Int) -> Float, _ b: (Int) -> Float, k: Int) -> Float {
            var s: Float = 0
            for p in 0..<k { s = s.addingProduct(a(p), b(p)) }
            return s
        }
        func epilogue(_ s: Float, alpha: Float, bias: Float?, beta: Float, c: Float) -> Float {
            var v = alpha == 1 ? s : alpha * s
            if let bias { v += bias }
            if beta != 0 { v += beta * c }
            return v
        }
        let best = Compute.isa, saved = Compute.threads
        defer { Compute.limitISA(best); Compute.setThreads(saved) }
        // A^T B + C (weight gradients): m larger than 32 x panels, so blocks of rows go first, each task packing
        // its own (k 2000: blocks of 96 rows, the last one 13)
        let (m1, n1, k1) = (301, 40, 2000)
        let at = random(k1 * m1, seed: 20), b1 = random(k1 * n1, seed: 21), c1 = random(m1 * n1, seed: 22)
        // deep k, beta 0: passes over k (A B with alpha, and x W^T + bias through a packed weight)
        let (m2, n2, k2) = (30, 50, 5000)
        let a2 = random(m2 * k2, seed: 23), b2 = random(k2 * n2, seed: 24), w2v = random(n2 * k2, seed: 25), bias2 = random(n2, seed: 26)
        let w2 = WeightMatrix(w2v, rows: n2, cols: k2)
        var want1 = [Float](repeating: 0, count: m1 * n1), want2 = [Float](repeating: 0, count: m2 * n2), want3 = want2
        for i in 0..<m1 { for j in 0..<n1 {
            want1[i * n1 + j] = epilogue(chain({ at[$0 * m1 + i] }, { b1[$0 * n1 + j] }, k: k1), alpha: 1, bias: nil, beta: 1, c: c1[i * n1 + j])
        } }
        for i in 0..<m2 { for j in 0..<n2 {
            want2[i * n2 + j] = epilogue(chain({ a2[i * k2 + $0] }, { b2[$0 * n2 + j] }, k: k2), alpha: 0.5, bias: nil, beta: 0, c: 0)
            want3[i * n2 + j] = epilogue(chain({ a2[i * k2 + $0] }, { w2v[j * k2 + $0] }, k: k2), alpha: 1, bias: bias2[j], beta: 0, c: 0)
        } }
        // A beyond a core's cache (600 x 700), read in place in blocks of rows: sampled elements
        let (m4, n4, k4) = (600, 160, 700)
        let x4 = random(m4 * k4, seed: 27), w4v = random(n4 * k4, seed: 28)
        let w4 = WeightMatrix(w4v, rows: n4, cols: k4)
        var g = LCG(s: 29)
        let samples = (0..<64).map { _ in (Int(g.s >> 33) % m4, Int((g.next() + 1) * 1000) % n4) }
        let want4 = samples.map { i, j in chain({ x4[i * k4 + $0] }, { w4v[j * k4 + $0] }, k: k4) }
        for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
            Compute.limitISA(isa)
            for threads in [1, 2, 3] {
                Compute.setThreads(threads)
                let y4 = linearOut(x4, w4, rows: m4)
                XCTAssertEqual(samples.map { y4[$0.0 * n4 + $0.1] }, want4, "blocks of rows, \(isa), \(threads) threads")
                var c = c1
                c.withUnsafeMutableBufferPointer { Compute.gemmTA($0.baseAddress!, ldc: n1, at, lda: m1, b1, ldb: n1, m: m1, n: n1, k: k1) }
                XCTAssertEqual(c, want1, "A^T B + C, \(isa), \(threads) threads")
                var d = [Float](repeating: .nan, count: m2 * n2)
                d.withUnsafeMutableBufferPointer { Compute.gemm($0.baseAddress!, ldc: n2, a2, lda: k2, b2, ldb: n2, transB: false, m: m2, n: n2, k: k2, alpha: 0.5) }
                XCTAssertEqual(d, want2, "deep A B, \(isa), \(threads) threads")
                XCTAssertEqual(linearOut(a2, w2, bias: bias2, rows: m2), want3, "deep x W^T + b, \(isa), \(threads) threads")
            }
        }
    }

    /// f32 -> bf16 rounds to nearest even, keeps NaN a NaN and infinities infinite.
    func testBF16Rounding() {
        let src: [Float] = [1.0, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001), .infinity, -.infinity, .nan]
        var dst = [UInt16](repeating: 0, count: src.count)
        dst.withUnsafeMutableBufferPointer { d in src.withUnsafeBufferPointer { tk_f32_to_bf16(d.baseAddress, $0.baseAddress, src.count) } }
        XCTAssertEqual(Array(dst[0..<6]), [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x7F80, 0xFF80])
        XCTAssertEqual(dst[6] & 0x7F80, 0x7F80); XCTAssertNotEqual(dst[6] & 0x7F, 0)
    }
}
