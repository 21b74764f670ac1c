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
        // Each thread that prepared (a thread finding nothing left skips it) was given about half the cost:
        // largest first, each to the less loaded side.
        let totals = prepared.items.map { Int($0.split(separator: ":")[1])! }, sum = costs.reduce(0, +)
        XCTAssertFalse(totals.isEmpty)
        for t in totals { XCTAssertLessThanOrEqual(abs(2 * t - sum), costs.max()!, "\(totals)") }
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
