// The vectorised backward kernels (BackwardKernels.swift) against their scalar references in
// Kernels.swift, with tails (sizes not a multiple of 8); and the transposed weight packing (the
// training backward's dx = dy W) against the general product, bit for bit.

import XCTest
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
            let wt = w.withUnsafeBufferPointer { WeightMatrix(transposing: $0.baseAddress!, rows: out, cols: inF) }
            XCTAssertEqual(wt.rows, inF); XCTAssertEqual(wt.cols, out)
            a.withUnsafeMutableBufferPointer { ab in dy.withUnsafeBufferPointer { linear(ab.baseAddress!, $0.baseAddress!, wt, nil, rows: n) } }
            b.withUnsafeMutableBufferPointer { bb in dy.withUnsafeBufferPointer { d in w.withUnsafeBufferPointer {
                Compute.gemm(bb.baseAddress!, ldc: inF, d.baseAddress!, lda: out, $0.baseAddress!, ldb: inF, transB: false, m: n, n: inF, k: out) } } }
            XCTAssertEqual(a, b, "[\(n), \(out)] x [\(out), \(inF)]")
            let p = w.withUnsafeBufferPointer { WeightMatrix(rowsOf: $0.baseAddress!, rows: out, cols: inF) }
            XCTAssertEqual(p.floats, WeightMatrix(w, rows: out, cols: inF).floats)
        }
    }
}
