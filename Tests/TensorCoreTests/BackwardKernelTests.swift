// The vectorised backward kernels (BackwardKernels.swift) against their scalar references in
// Kernels.swift, with tails (sizes not a multiple of 8); and the transposed weight packing (the
// training backward's dx = dy W) against the general product, bit for bit.

import XCTest
import CKernels
@testable import TensorCore

final class BackwardKernelTests: XCTestCase {
    func values(_ n: Int, _ f: (Int) -> Float) -> [Float] { (0..<n).map(f) }
    func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) / max(1, abs($0)) }.max()! }

    func testActivationBackwardsMatchScalar() {
        let n = 1003
        let x = values(n) { Float($0 - 500) / 60 }, dy = values(n) { sin(Float($0)) }
        var a = [Float](repeating: 0, count: n), b = a
        geluTanhBackward(&a, x, dy, count: n); geluTanhBackwardFast(&b, x, dy, count: n)
        XCTAssertLessThan(worst(a, b), 2e-6, "gelu tanh backward")
        let u = values(n) { Float($0 % 7) - 3 }
        var g1 = a, u1 = a, g2 = a, u2 = a
        siluGateBackward(dgate: &g1, dup: &u1, dout: dy, gate: x, up: u, count: n)
        siluGateBackwardFast(dgate: &g2, dup: &u2, dout: dy, gate: x, up: u, count: n)
        XCTAssertLessThan(worst(g1, g2), 2e-6, "silu gate backward: dgate")
        XCTAssertLessThan(worst(u1, u2), 2e-6, "silu gate backward: dup")
    }

    func testNormBackwardsMatchScalar() {
        let rows = 3, c = 37
        let x = values(rows * c) { sin(Float($0) * 0.7) * 3 }, dy = values(rows * c) { cos(Float($0) * 0.3) }
        let gamma = values(c) { 1 + Float($0) / 50 }, beta = values(c) { Float($0) / 100 }
        var out = [Float](repeating: 0, count: rows * c), mean = [Float](repeating: 0, count: rows), rstd = mean
        layerNormForward(&out, mean: &mean, rstd: &rstd, x, gamma, beta, rows: rows, dim: c, eps: 1e-5)
        var dx1 = values(rows * c) { Float($0) / 1000 }, dx2 = dx1
        var dg1 = values(c) { Float($0) / 10 }, dg2 = dg1, db1 = dg1, db2 = dg1
        layerNormBackward(dx: &dx1, dgamma: &dg1, dbeta: &db1, dout: dy, x: x, gamma: gamma, mean: mean, rstd: rstd, rows: rows, dim: c)
        layerNormBackwardFast(dx: &dx2, dgamma: &dg2, dbeta: &db2, dout: dy, x: x, gamma: gamma, mean: mean, rstd: rstd, rows: rows, dim: c)
        XCTAssertLessThan(worst(dx1, dx2), 1e-5, "layernorm dx"); XCTAssertLessThan(worst(dg1, dg2), 1e-5, "layernorm dgamma")
        XCTAssertLessThan(worst(db1, db2), 1e-6, "layernorm dbeta")
        rmsNormForward(&out, rstd: &rstd, x, gamma, rows: rows, dim: c, eps: 1e-6)
        var rx1 = dx1, rx2 = dx1, rg1 = dg1, rg2 = dg1
        rmsNormBackward(dx: &rx1, dgamma: &rg1, dout: dy, x: x, gamma: gamma, rstd: rstd, rows: rows, dim: c)
        rmsNormBackwardFast(dx: &rx2, dgamma: &rg2, dout: dy, x: x, gamma: gamma, rstd: rstd, rows: rows, dim: c)
        XCTAssertLessThan(worst(rx1, rx2), 1e-5, "rmsnorm dx"); XCTAssertLessThan(worst(rg1, rg2), 1e-5, "rmsnorm dgamma")
    }

    /// dx = dy W through a matrix packed transposed once equals the general product (which packs W
    /// per call), bit for bit; and the pointer-packed matrix equals the array-packed one.
    func testTransposedPackingEqualsGeneralProduct() {
        for (n, out, inF) in [(5, 33, 17), (13, 64, 100), (1, 7, 3)] {
            let w = values(out * inF) { sin(Float($0) * 1.3) }, dy = values(n * out) { cos(Float($0) * 0.9) }
            var a = [Float](repeating: 0, count: n * inF), b = a
            let wt = w.withUnsafeBufferPointer { WeightMatrix(transposing: [($0.baseAddress!, out)], cols: inF) }
            XCTAssertEqual(wt.rows, inF); XCTAssertEqual(wt.cols, out)
            a.withUnsafeMutableBufferPointer { ab in dy.withUnsafeBufferPointer { linear(ab.baseAddress!, $0.baseAddress!, wt, nil, rows: n) } }
            b.withUnsafeMutableBufferPointer { bb in dy.withUnsafeBufferPointer { d in w.withUnsafeBufferPointer {
                Compute.gemm(bb.baseAddress!, ldc: inF, d.baseAddress!, lda: out, $0.baseAddress!, ldb: inF, transB: false, m: n, n: inF, k: out) } } }
            XCTAssertEqual(a, b, "[\(n), \(out)] x [\(out), \(inF)]")
            let p = w.withUnsafeBufferPointer { WeightMatrix(rowsOf: [($0.baseAddress!, out)], cols: inF) }
            XCTAssertEqual(p.floats, WeightMatrix(w, rows: out, cols: inF).floats)
        }
    }

    /// A fused matrix packed from its parts where they lie (training's QKV from Q, K and V in the flat
    /// parameters) equals the one packed from their stacked copy, forward and transposed, with parts
    /// that end inside a 32-row panel and more panels than threads.
    func testMatrixPackedFromPartsEqualsStackedCopy() {
        for (sizes, inF) in [([5, 40, 19], 17), ([64, 64, 64], 33), ([1], 3), ([300, 7, 100], 70)] {
            let parts = sizes.enumerated().map { i, r in values(r * inF) { sin(Float($0 + 1000 * i) * 0.7) } }
            let stacked = parts.flatMap { $0 }, out = sizes.reduce(0, +)
            let held = parts.map { p in UnsafeMutableBufferPointer<Float>.allocate(capacity: p.count) }
            defer { held.forEach { $0.deallocate() } }
            for (h, p) in zip(held, parts) { _ = h.initialize(from: p) }
            let list = zip(held, sizes).map { (data: UnsafePointer($0.baseAddress!), rows: $1) }
            func packed(_ m: WeightMatrix) -> [Float] { if case .f32(let a) = m.storage { return a }; return [] }
            XCTAssertEqual(packed(WeightMatrix(rowsOf: list, cols: inF)), packed(WeightMatrix(stacked, rows: out, cols: inF)), "\(sizes) x \(inF)")
            // narrowed to bf16 as it is packed (a load's fused QKV and gate|up): the stacked copy's bits
            func bf16(_ m: WeightMatrix) -> [UInt16] { if case .bf16(let a) = m.storage { return a }; return [] }
            let fromParts = bf16(WeightMatrix(rowsOf: list, cols: inF, dtype: .bfloat16))
            XCTAssertEqual(fromParts.count, tk_packed_count(out, inF))
            XCTAssertEqual(fromParts, bf16(WeightMatrix(stacked, rows: out, cols: inF, dtype: .bfloat16)), "bf16 \(sizes) x \(inF)")
            let t = stacked.withUnsafeBufferPointer { WeightMatrix(transposing: [($0.baseAddress!, out)], cols: inF) }
            let f = WeightMatrix(transposing: list, cols: inF)
            XCTAssertEqual(f.rows, inF); XCTAssertEqual(f.cols, out)
            XCTAssertEqual(packed(f), packed(t), "transposed \(sizes) x \(inF)")
            XCTAssertEqual(f.floats, (0..<inF).flatMap { c in (0..<out).map { stacked[$0 * inF + c] } }, "the transpose's values")
        }
    }

    /// The AdamW pass equals torch.optim.AdamW's formula written out in Swift, each operation rounded in order,
    /// bit for bit, on every ISA, with and without a clipping scale (whose scaled gradients are stored back);
    /// the sum of squares is the same bits on every ISA and within 1e-12 of a plain double sum.
    func testAdamWPassAndSumOfSquaresAreExact() {
        let n = 1000 + 13
        let p0 = values(n) { sin(Float($0) * 0.37) }, m0 = values(n) { 0.01 * cos(Float($0) * 0.11) }
        let v0 = values(n) { 1e-4 * (1 + sin(Float($0) * 0.05)) }, g0 = values(n) { 0.1 * sin(Float($0) * 1.7) }
        let (b1, b2, eps, decay, stepSize, bc2Sqrt): (Float, Float, Float, Float, Float, Float) = (0.9, 0.95, 1e-8, 0.9999, 1.3e-3, 0.31)
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        for scale: Float in [1, 0.37] {
            var wp = p0, wm = m0, wv = v0, wg = g0
            for i in 0..<n {
                var g = wg[i]
                if scale != 1 { g = g * scale; wg[i] = g }
                let mi = b1 * wm[i] + (1 - b1) * g
                let vi = b2 * wv[i] + (1 - b2) * g * g
                wm[i] = mi; wv[i] = vi
                var p = wp[i] * decay
                p -= stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps)
                wp[i] = p
            }
            for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
                Compute.limitISA(isa)
                var p = p0, m = m0, v = v0, g = g0
                p.withUnsafeMutableBufferPointer { pb in m.withUnsafeMutableBufferPointer { mb in v.withUnsafeMutableBufferPointer { vb in g.withUnsafeMutableBufferPointer { gb in
                    adamwUpdate(params: pb.baseAddress!, m: mb.baseAddress!, v: vb.baseAddress!, grads: gb.baseAddress!, count: n, gradScale: scale,
                                beta1: b1, beta2: b2, stepSize: stepSize, bc2Sqrt: bc2Sqrt, eps: eps, decay: decay)
                } } } }
                XCTAssertEqual(p, wp, "params, \(isa), scale \(scale)"); XCTAssertEqual(m, wm, "m, \(isa)")
                XCTAssertEqual(v, wv, "v, \(isa)"); XCTAssertEqual(g, wg, "grads, \(isa), scale \(scale)")
            }
        }
        var sums: [Double] = []
        for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
            Compute.limitISA(isa)
            sums.append(g0.withUnsafeBufferPointer { sumOfSquares($0.baseAddress!, count: n) })
        }
        XCTAssertEqual(Set(sums).count, 1, "\(sums)")
        XCTAssertEqual(sums[0], g0.reduce(0.0) { $0 + Double($1) * Double($1) }, accuracy: 1e-12)
    }
}
