import XCTest
import Foundation
@testable import Collectives

final class RegionTests: XCTestCase {
    /// Run `body(rank)` on `n` threads of one ThreadGroup; collect results in rank order.
    func onRanks<T>(_ n: Int, timeout: Double = 10, _ body: @escaping (ThreadRank) throws -> T) throws -> [T] {
        let g = ThreadGroup(size: n, timeout: timeout)
        var out = [Result<T, Error>?](repeating: nil, count: n)
        let lock = NSLock()
        let threads = (0..<n).map { r in Thread {
            let res = Result { try body(g.member(r)) }
            lock.lock(); out[r] = res; lock.unlock()
        } }
        threads.forEach { $0.start() }
        while true { lock.lock(); let done = out.allSatisfy { $0 != nil }; lock.unlock(); if done { break }; usleep(1000) }
        return try out.map { try $0!.get() }
    }

    func randoms(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 1000) / 500 - 1 }
    }

    func testAllReduceSumsInRankOrderAndIsReproducible() throws {
        let res = try onRanks(4) { r -> [Float] in
            var x = self.randoms(100, seed: UInt64(r.rank + 1))
            try x.withUnsafeMutableBufferPointer { try r.allReduce($0) }
            return x
        }
        var want = randoms(100, seed: 1)
        for k in 2...4 { let o = randoms(100, seed: UInt64(k)); for i in 0..<100 { want[i] += o[i] } }
        for r in res { XCTAssertEqual(r, want) }
    }

    func inner(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    func sumOverRanks(_ v: Double, _ g: ThreadRank) throws -> Double {
        var x = [Float(v)]
        try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
        return Double(x[0])
    }

    /// Each region op's backward is the adjoint of its forward over the whole group:
    /// sum over ranks of <F(x), y> == sum over ranks of <x, B(y)>, with replicated tensors counted once.
    func testForwardAndBackwardAreAdjoint() throws {
        let rows = 3, cols = 8, n = 4, lc = cols / n
        let checks = try onRanks(n) { g -> [(Double, Double)] in
            let r = UInt64(g.rank)
            // scatter-to: x replicated [rows, cols] -> own slice; y_r [rows, lc] per rank
            let x1 = self.randoms(rows * cols, seed: 11), y1 = self.randoms(rows * lc, seed: 20 + r)
            let l1 = try self.sumOverRanks(self.inner(Region.scatterToForward(x1, rows: rows, cols: cols, g), y1), g)
            let r1 = self.inner(x1, try Region.scatterToBackward(y1, rows: rows, localCols: lc, g))
            // gather-from: x_r [rows, lc] per rank -> replicated full; y replicated
            let x2 = self.randoms(rows * lc, seed: 40 + r), y2 = self.randoms(rows * cols, seed: 50)
            let l2 = self.inner(try Region.gatherFromForward(x2, rows: rows, localCols: lc, g), y2)
            let r2 = try self.sumOverRanks(self.inner(x2, Region.gatherFromBackward(y2, rows: rows, cols: cols, g)), g)
            // reduce-from: x_r per rank -> replicated sum; y replicated, backward identity
            var x3 = self.randoms(rows * cols, seed: 60 + r); let x3r = x3
            try x3.withUnsafeMutableBufferPointer { try Region.reduceFromForward($0, g) }
            var y3 = y2
            try y3.withUnsafeMutableBufferPointer { try Region.reduceFromBackward($0, g) }
            let l3 = self.inner(x3, y2), r3 = try self.sumOverRanks(self.inner(x3r, y3), g)
            // copy-to: x replicated -> per-rank copies; y_r per rank, backward all-reduces
            var x4 = x1; try x4.withUnsafeMutableBufferPointer { try Region.copyToForward($0, g) }
            var y4 = self.randoms(rows * cols, seed: 70 + r); let y4r = y4
            try y4.withUnsafeMutableBufferPointer { try Region.copyToBackward($0, g) }
            let l4 = try self.sumOverRanks(self.inner(x4, y4r), g), r4 = self.inner(x1, y4)
            return [(l1, r1), (l2, r2), (l3, r3), (l4, r4)]
        }
        for rank in checks { for (i, (l, r)) in rank.enumerated() {
            XCTAssertEqual(l, r, accuracy: 1e-3 * max(1, abs(l)), "region op \(i): <F x, y> = \(l), <x, B y> = \(r)")
            XCTAssertNotEqual(l, 0)
        } }
    }

    func testMissingRankTimesOutNamingIt() throws {
        let g = ThreadGroup(size: 2, timeout: 0.3)
        var x: [Float] = [1]
        XCTAssertThrowsError(try x.withUnsafeMutableBufferPointer { try g.member(0).allReduce($0) }) { e in
            XCTAssertEqual(e as? CollectiveError, .timeout(operation: "allReduce", missing: [1], seconds: 0.3))
        }
    }
}
