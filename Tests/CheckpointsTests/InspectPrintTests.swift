// Prints `inspect` for every fixture folder (run with --filter InspectPrintTests to read them).
import Foundation
import XCTest
@testable import Checkpoints

final class InspectPrintTests: XCTestCase {
    func testInspectAllFixtures() throws {
        for (name, _) in FixtureTests.sharded + [("gpt2-tiny", false)] {
            let ins = CheckpointLoader.inspect(try Fixtures.dir(name))
            XCTAssertNotNil(ins.config, name)
            XCTAssertTrue(ins.problems.allSatisfy { $0.contains("padded") }, "\(name): \(ins.problems)")
            print(ins)
        }
    }
}
