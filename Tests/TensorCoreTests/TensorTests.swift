import XCTest
@testable import TensorCore

final class TensorTests: XCTestCase {
    func testSplitConcatRoundTripOnEachAxis() {
        let t = Tensor(shape: [4, 6], data: (0..<24).map(Float.init))
        for axis in 0..<2 {
            let parts = t.split(axis: axis, parts: 2)
            XCTAssertEqual(Tensor.concat(parts, axis: axis), t)
        }
        XCTAssertEqual(t.slice(axis: 1, start: 2, count: 2).data, [2, 3, 8, 9, 14, 15, 20, 21])
    }

    func testTranspose() {
        let t = Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.transposed(), Tensor(shape: [3, 2], data: [1, 4, 2, 5, 3, 6]))
        // shapes around the 32 x 32 tiles: element (i, j) lands at (j, i)
        for (a, b) in [(1, 1), (31, 33), (64, 32), (70, 45), (1, 100)] {
            let m = Tensor(shape: [a, b], data: (0..<(a * b)).map(Float.init))
            let mt = m.transposed()
            XCTAssertEqual(mt.shape, [b, a])
            var bad = 0
            for i in 0..<a { for j in 0..<b where mt.data[j * a + i] != Float(i * b + j) { bad += 1 } }
            XCTAssertEqual(bad, 0, "\(a) x \(b)")
        }
    }

    func testBF16RoundTripAndRounding() {
        XCTAssertEqual(bf16ToFloat(floatToBF16(1.5)), 1.5)
        // 1 + 2^-8 is halfway between two bf16 values: ties to even (1.0)
        XCTAssertEqual(bf16ToFloat(floatToBF16(1 + 1.0 / 256)), 1.0)
        XCTAssertEqual(bf16ToFloat(floatToBF16(1 + 3.0 / 256)), 1 + 4.0 / 256)
    }
}
