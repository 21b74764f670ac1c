import XCTest
import Foundation
import CKernels
@testable import TensorCore

final class KernelTests: XCTestCase {
    func testVectorExpMatchesLibm() {
        var worst: Float = 0
        for i in -8700...8800 {
            let x = Float(i) / 100
            let v = vexp(SIMD8(repeating: x))[0]
            worst = max(worst, abs(v - expf(x)) / expf(x))
        }
        XCTAssertLessThan(worst, 5e-7, "max relative error \(worst)")
    }

    /// The rewritten vexp (compare-and-select clamp, rounding-trick floor) equals its first formulation bit
    /// for bit: every 500th float of either sign up to 130 (past both clamps), and the special values.
    func testVectorExpIsBitIdenticalToItsReference() {
        var lanes: [Float] = [0, -0.0, .nan, .infinity, -.infinity, 88.37626, -87.33654, 0.5, -0.5, 1e-30, -1e-30, 1e30, -1e30, .ulpOfOne]
        for bits in stride(from: Float(0).bitPattern, to: Float(130).bitPattern, by: 500) {
            lanes.append(Float(bitPattern: bits)); lanes.append(-Float(bitPattern: bits))
        }
        while lanes.count % 8 != 0 { lanes.append(1) }
        var mismatches = 0
        for i in stride(from: 0, to: lanes.count, by: 8) {
            let v = SIMD8<Float>(lanes[i..<i + 8])
            let a = vexp(v), b = vexpReference(v)
            for j in 0..<8 where a[j].bitPattern != b[j].bitPattern && !(a[j].isNaN && b[j].isNaN) {
                if mismatches < 5 { XCTFail("vexp(\(v[j])) = \(a[j]), reference \(b[j])") }
                mismatches += 1
            }
        }
        XCTAssertEqual(mismatches, 0, "of \(lanes.count) values")
    }

    /// The float16 storage of a bf16 model's KV cache: on every ISA, widening every float16 and narrowing a
    /// spread of floats (every 4093rd bit pattern, and the edges: 65504, 65520, subnormals, ties) give the bits of
    /// Swift's own Float16 conversions (IEEE, nearest even); a NaN stays a NaN, with the same bits on every ISA
    /// as every other value; too-large finite values are counted (and stored as infinite).
    func testFloat16ConversionsAreIEEEOnEveryISA() {
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        var floats: [Float] = [65504, 65519.99, 65520, 65536, -65520, 1e-8, 5.96e-8, 2.9802322e-8, 2.9802326e-8, 6.1035156e-5, 0, -0.0,
                               .infinity, -.infinity, .nan, 1 + .ulpOfOne, 1.00048828125, 1.000732421875]
        for bits in stride(from: UInt64(0), through: UInt64(UInt32.max), by: 4093) { floats.append(Float(bitPattern: UInt32(bits))) }
        let halves = (0...UInt16.max).map { $0 }
        let tooLarge = floats.filter { $0.isFinite && abs($0) >= 65520 }.count
        var outputs: [[UInt32]] = []
        for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
            Compute.limitISA(isa)
            var wide = [Float](repeating: 0, count: halves.count)
            tk_f16_to_f32(&wide, halves, halves.count)
            var bad = 0
            for (h, w) in zip(halves, wide) where !(w.isNaN && Float16(bitPattern: h).isNaN) && w.bitPattern != Float(Float16(bitPattern: h)).bitPattern {
                if bad < 3 { XCTFail("\(isa): float16 \(String(h, radix: 16)) widened to \(w)") }
                bad += 1
            }
            var narrow = [UInt16](repeating: 0, count: floats.count)
            XCTAssertEqual(tk_f32_to_f16(&narrow, floats, floats.count), tooLarge, "\(isa)")
            for (f, h) in zip(floats, narrow) where !(f.isNaN && Float16(bitPattern: h).isNaN) && h != Float16(f).bitPattern {
                if bad < 6 { XCTFail("\(isa): \(f) narrowed to \(String(h, radix: 16)), Float16 gives \(String(Float16(f).bitPattern, radix: 16))") }
                bad += 1
            }
            XCTAssertEqual(bad, 0, "\(isa)")
            XCTAssertGreaterThan(tooLarge, 1000)
            outputs.append(wide.map(\.bitPattern) + narrow.map(UInt32.init))
        }
        XCTAssertEqual(Set(outputs).count, 1, "every ISA gives the same bits, NaNs included")
    }

    /// Inputs for the activations' bitwise tests: `dense` values evenly over [-12.5, 12.5) (the activations'
    /// usual range), every 4093rd float bit pattern (both signs, NaNs, infinities), and edge values.
    static func activationInputs(dense n: Int) -> [Float] {
        var x: [Float] = (0..<n).map { Float($0 - n / 2) * (25 / Float(n)) }
        for bits in stride(from: UInt64(0), through: UInt64(UInt32.max), by: 4093) { x.append(Float(bitPattern: UInt32(bits))) }
        return x + [.nan, .infinity, -.infinity, 0, -0.0, 88, -88, 1e-30, -1e-30]
    }

    /// Lengths up to n that end on a 16-lane block, half-way into one (the AVX2 hand-off) and with a scalar tail.
    static func lengthsAroundTheTail(_ n: Int) -> [Int] { [n - n % 16, min(n, n - n % 16 + 8), n] }

    /// GeLU's C kernel gives the bits of its Swift SIMD8 definition on every ISA: every 4093rd float bit pattern
    /// (both signs, NaN and infinities included), the activations' usual range densely, at lengths with and
    /// without a tail.
    func testGeluKernelIsItsSwiftDefinitionBitForBit() {
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        let inputs = Self.activationInputs(dense: 200_000)
        for count in Self.lengthsAroundTheTail(inputs.count) {
            var want = Array(inputs[..<count])
            want.withUnsafeMutableBufferPointer { geluTanhVectorReference($0.baseAddress!, count: count) }
            for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
                Compute.limitISA(isa)
                var got = Array(inputs[..<count])
                got.withUnsafeMutableBufferPointer { geluTanhFast($0.baseAddress!, count: count) }
                let bad = zip(got, want).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern && !($0.element.0.isNaN && $0.element.1.isNaN) }
                XCTAssertEqual(bad.count, 0, "\(isa), \(count) values: first at \(bad.first.map { "\(inputs[$0.offset]) -> \($0.element.0) vs \($0.element.1)" } ?? "")")
            }
        }
    }

    /// The MLP's backward activations in C (GeLU's and the SiLU gate's) give the bits of their Swift SIMD8
    /// definitions on every ISA: inputs as GeLU's test above (every 4093rd bit pattern included), gradients
    /// and up-projections drawn alongside, at lengths with and without a tail.
    func testActivationBackwardKernelsAreTheirSwiftDefinitionsBitForBit() {
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        let x = Self.activationInputs(dense: 100_000)
        var draws = ScoreRows(seed: 17, spread: 8, wildEvery: 97, wild: [.nan, .infinity, 1e30, -0.0])
        let dout = draws.next(x.count, wild: true), up = draws.next(x.count, wild: true)
        func same(_ a: [Float], _ b: [Float]) -> Int { zip(a, b).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count }
        for count in Self.lengthsAroundTheTail(x.count) {
            var wantDx = [Float](repeating: 0, count: count), wantGate = wantDx, wantUp = wantDx
            geluTanhBackwardVectorReference(&wantDx, x, dout, count: count)
            siluGateBackwardVectorReference(dgate: &wantGate, dup: &wantUp, dout: dout, gate: x, up: up, count: count)
            for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
                Compute.limitISA(isa)
                var dx = [Float](repeating: 1, count: count), dgate = dx, dup = dx
                geluTanhBackwardFast(&dx, x, dout, count: count)
                siluGateBackwardFast(dgate: &dgate, dup: &dup, dout: dout, gate: x, up: up, count: count)
                XCTAssertEqual(same(dx, wantDx), 0, "GeLU backward, \(isa), \(count) values")
                XCTAssertEqual(same(dgate, wantGate), 0, "SiLU gate backward dgate, \(isa), \(count) values")
                XCTAssertEqual(same(dup, wantUp), 0, "SiLU gate backward dup, \(isa), \(count) values")
            }
        }
    }

    /// The softmax with its exp pass in C gives the bits of its Swift SIMD8 definition on every ISA, at every
    /// length from 1 to 70 and a long one, on rows of attention-like scores and on rows with huge and -inf values.
    func testSoftmaxKernelIsItsSwiftDefinitionBitForBit() {
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        var rows = ScoreRows(seed: 5, spread: 24, wildEvery: 7, wild: [-Float.infinity, 1e30, -1e30, 90, -90])
        func row(_ n: Int, wild: Bool) -> [Float] { rows.next(n, wild: wild) }
        for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
            Compute.limitISA(isa)
            var bad = 0
            for n in Array(1...70) + [1029] {
                for wild in [false, true] {
                    let input = row(n, wild: wild)
                    var want = input, got = input
                    want.withUnsafeMutableBufferPointer { softmaxVectorReference($0.baseAddress!, count: n) }
                    got.withUnsafeMutableBufferPointer { softmaxFast($0.baseAddress!, count: n) }
                    for (g, w) in zip(got, want) where g.bitPattern != w.bitPattern && !(g.isNaN && w.isNaN) { bad += 1 }
                }
            }
            XCTAssertEqual(bad, 0, "\(isa)")
        }
    }

    /// The log-softmax's and the cross-entropy's exp passes in C (`maxArgmaxSumExp`, `expShiftedInPlace`:
    /// blocks of 1024, lane sums into a Double) give their Swift SIMD8 definitions' bits on every ISA, at
    /// lengths around the block and lane boundaries and GPT-2's vocabulary, on tame rows and wild ones.
    func testLogSoftmaxExpPassesAreTheirSwiftDefinitionsBitForBit() {
        let best = Compute.isa
        defer { Compute.limitISA(best) }
        var rows = ScoreRows(seed: 11, spread: 30, wildEvery: 5, wild: [-Float.infinity, 1e30, -1e30, 90, -90, .nan])
        func row(_ n: Int, wild: Bool) -> [Float] { rows.next(n, wild: wild) }
        for isa in [Compute.ISA.avx512, .avx2, .portable] where isa.rawValue <= Compute.cpuISA.rawValue {
            Compute.limitISA(isa)
            var bad: [String] = []
            for n in [1, 7, 8, 9, 16, 17, 1023, 1024, 1025, 1031, 2048 + 24, 50257] {
                for wild in [false, true] {
                    let input = row(n, wild: wild)
                    let w = input.withUnsafeBufferPointer { maxArgmaxSumExpVectorReference($0.baseAddress!, count: n) }
                    let g = input.withUnsafeBufferPointer { maxArgmaxSumExp($0.baseAddress!, count: n) }
                    if g.max.bitPattern != w.max.bitPattern || g.argmax != w.argmax || !(g.sumExp.bitPattern == w.sumExp.bitPattern || (g.sumExp.isNaN && w.sumExp.isNaN)) {
                        bad.append("maxArgmaxSumExp n \(n) wild \(wild): \(g) vs \(w)")
                    }
                    var want = input, got = input
                    let ws = want.withUnsafeMutableBufferPointer { expShiftedVectorReference($0.baseAddress!, count: n, shift: 3.5) }
                    let gs = got.withUnsafeMutableBufferPointer { expShiftedInPlace($0.baseAddress!, count: n, shift: 3.5) }
                    let rows = zip(got, want).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
                    if rows > 0 || !(gs.bitPattern == ws.bitPattern || (gs.isNaN && ws.isNaN)) { bad.append("expShifted n \(n) wild \(wild): \(rows) values, sum \(gs) vs \(ws)") }
                }
            }
            XCTAssertEqual(bad, [], "\(isa)")
        }
    }

    func testFastActivationsMatchReference() {
        let n = 1003
        var a = (0..<n).map { Float($0 - 500) / 60 }, b = a
        a.withUnsafeMutableBufferPointer { geluTanh($0.baseAddress!, count: n) }
        b.withUnsafeMutableBufferPointer { geluTanhFast($0.baseAddress!, count: n) }
        XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 2e-6)
        let g = (0..<n).map { Float($0 - 500) / 50 }, u = (0..<n).map { Float($0 % 7) - 3 }
        var s1 = [Float](repeating: 0, count: n), s2 = s1
        siluGate(&s1, g, u, count: n); siluGateFast(&s2, g, u, count: n)
        XCTAssertLessThan(zip(s1, s2).map { abs($0 - $1) }.max()!, 2e-6)
        var p1 = (0..<n).map { sin(Float($0)) * 20 }, p2 = p1
        p1.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: n) }
        p2.withUnsafeMutableBufferPointer { softmaxFast($0.baseAddress!, count: n) }
        XCTAssertLessThan(zip(p1, p2).map { abs($0 - $1) }.max()!, 1e-7)
        XCTAssertEqual(p2.reduce(0, +), 1, accuracy: 1e-5)
    }

    /// Layernorm against a float64 computation; GeLU values at known points.
    func testLayerNormAndGeluValues() {
        let x: [Float] = [1, 2, 3, 4], g: [Float] = [1, 0.5, 2, 1], b: [Float] = [0, 1, 0, -1]
        var out = [Float](repeating: 0, count: 4)
        layerNorm(&out, x, g, b, rows: 1, dim: 4, eps: 1e-5)
        let mean = 2.5, v = 1.25
        for i in 0..<4 { XCTAssertEqual(Double(out[i]), (Double(x[i]) - mean) / (v + 1e-5).squareRoot() * Double(g[i]) + Double(b[i]), accuracy: 1e-6) }
        var y: [Float] = [1.0, -1.0]
        y.withUnsafeMutableBufferPointer { geluErf($0.baseAddress!, count: 2) }
        XCTAssertEqual(y[0], 0.8413447, accuracy: 1e-6)   // torch.nn.functional.gelu(torch.tensor(1.0))
        XCTAssertEqual(y[1], -0.1586553, accuracy: 1e-6)
    }

}

/// Rows of scores for the element-wise kernels' tests: uniform in (-spread/2, spread/2) from a seeded LCG, and on
/// wild rows one value in `wildEvery` drawn from `wild` (infinities, huge values, NaN).
struct ScoreRows {
    var state: UInt64
    let spread: Float, wildEvery: UInt64, wild: [Float]
    init(seed: UInt64, spread: Float, wildEvery: UInt64, wild: [Float]) { state = seed; self.spread = spread; self.wildEvery = wildEvery; self.wild = wild }
    mutating func draw() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
    mutating func next(_ n: Int, wild isWild: Bool) -> [Float] {
        (0..<n).map { _ in
            let u = Float(draw() % 1_000_000) / 1_000_000
            if isWild && draw() % wildEvery == 0 { return wild[Int(draw() % UInt64(wild.count))] }
            return (u - 0.5) * spread
        }
    }
}
