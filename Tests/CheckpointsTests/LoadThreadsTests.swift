// partitionedMap: items split by cost between two threads, each preparing for its share first; results
// in item order; a failure stops new items and is rethrown.

import Foundation
import XCTest
@testable import Checkpoints

final class LoadThreadsTests: XCTestCase {
    struct Boom: Error, Equatable { let item: Int }

    func testResultsComeInItemOrderAndSharesAreBalanced() throws {
        let costs = (0..<100).map { ($0 * 37) % 101 + 1 }
        let prepared = Log()
        let out = try partitionedMap(costs: costs, prepare: { t, total in prepared.add("\(t):\(total)") }) { $0 * $0 }
        XCTAssertEqual(out, (0..<100).map { $0 * $0 })
        let totals = prepared.items.map { Int($0.split(separator: ":")[1])! }
        XCTAssertEqual(totals.reduce(0, +), costs.reduce(0, +))
        XCTAssertLessThanOrEqual(abs(totals[0] - totals[1]), costs.max()!)   // largest first, to the less loaded side
        XCTAssertEqual(try partitionedMap(costs: [], prepare: { _, _ in }) { $0 }, [])
        XCTAssertEqual(try partitionedMap(costs: [5], prepare: { _, _ in }) { $0 + 41 }, [41])
    }

    func testAFailureStopsNewItemsAndIsRethrown() {
        let started = Log()
        XCTAssertThrowsError(try partitionedMap(costs: Array(repeating: 1, count: 1000), prepare: { _, _ in }) { i -> Int in
            started.add("\(i)")
            if i == 3 { throw Boom(item: i) }
            Thread.sleep(forTimeInterval: 0.001)
            return i
        }) { e in XCTAssertEqual(e as? Boom, Boom(item: 3)) }
        XCTAssertLessThan(started.items.count, 40, "items kept starting after a failure")
    }

    final class Log: @unchecked Sendable {
        private let lock = NSLock(); private var xs: [String] = []
        func add(_ x: String) { lock.lock(); xs.append(x); lock.unlock() }
        var items: [String] { lock.lock(); defer { lock.unlock() }; return xs.sorted() }
    }
}
