// concurrentMap: results in item order from two threads, the error of the lowest failing item, no new
// item started after a failure.

import Foundation
import XCTest
@testable import Checkpoints

final class LoadThreadsTests: XCTestCase {
    struct Boom: Error, Equatable { let item: Int }

    func testResultsComeInItemOrder() throws {
        XCTAssertEqual(try concurrentMap(100) { $0 * $0 }, (0..<100).map { $0 * $0 })
        XCTAssertEqual(try concurrentMap(0) { $0 }, [])
        XCTAssertEqual(try concurrentMap(1) { $0 + 41 }, [41])
    }

    func testLowestFailingItemIsRethrownAndLaterItemsDoNotStart() {
        let started = Counter()
        XCTAssertThrowsError(try concurrentMap(1000) { i -> Int in
            started.add()
            if i == 3 || i == 5 { throw Boom(item: i) }
            Thread.sleep(forTimeInterval: 0.001)
            return i
        }) { e in XCTAssertEqual(e as? Boom, Boom(item: 3)) }
        XCTAssertLessThan(started.value, 20, "items kept starting after a failure")
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock(); private var n = 0
        func add() { lock.lock(); n += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    }
}
