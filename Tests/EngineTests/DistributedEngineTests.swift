// What of the MPI path runs without mpirun: the process-count rule and its message, and that MPI
// stays uninitialised in an ordinary process. The MPI runs themselves are scripts/test_mpi.sh.
import XCTest
@testable import Engine
import Model
import Collectives

final class DistributedEngineTests: XCTestCase {
    func testProcessCountMustBeTPTimesPP() throws {
        XCTAssertNoThrow(try DistributedEngine.checkProcessCount(ParallelLayout(tp: 2, pp: 2), worldSize: 4))
        XCTAssertThrowsError(try DistributedEngine.checkProcessCount(ParallelLayout(tp: 2, pp: 2), worldSize: 3)) { e in
            XCTAssertEqual(e as? DistributedError, .processCount(processes: 3, tp: 2, pp: 2))
            XCTAssertTrue("\(e)".hasPrefix("mpirun started 3 processes but --tp 2 x --pp 2 needs 4"), "\(e)")
        }
    }

    func testMPIIsNotInitialisedOutsideMpirun() throws {
        try XCTSkipIf(MPIRuntime.launchedByMPIRun, "running under mpirun")
        XCTAssertFalse(MPIRuntime.isActive)
        XCTAssertEqual(MPIRuntime.worldSize, 1)
        XCTAssertThrowsError(try MPICollective.world())
    }
}
