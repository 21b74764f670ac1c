// MPIRuntime: the process-wide MPI state (the only global of the process-group code).
//
// MPI is initialised only when the process was started by Open MPI's `mpirun` (it sets
// OMPI_COMM_WORLD_SIZE), so ordinary runs never need mpirun. `initialize()` once at start-up,
// `finalize()` once at a clean exit, `abort(_:)` on an error: it prints the message and takes the
// whole job down with MPI_Abort, because MPI calls on the other ranks would otherwise wait for the
// failed rank (they time out after `defaultTimeout` seconds, $TURING_MPI_TIMEOUT, then abort too).

import Foundation
import CMPIShim

public enum MPIRuntime {
    /// True when this process was launched by Open MPI's mpirun.
    public static var launchedByMPIRun: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    /// Seconds an MPI operation may wait for its peers: $TURING_MPI_TIMEOUT, default 300.
    public static var defaultTimeout: Double {
        ProcessInfo.processInfo.environment["TURING_MPI_TIMEOUT"].flatMap { Double($0) } ?? 300
    }

    /// True between `initialize()` and `finalize()`.
    public static var isActive: Bool { tmpi_initialized() != 0 }

    public static func initialize() throws {
        if isActive { return }
        let rc = tmpi_init()
        if rc != 0 { throw CollectiveError.mpi(operation: "MPI_Init", message: errorString(rc)) }
    }

    /// World rank (0 when MPI is not active).
    public static var worldRank: Int { isActive ? Int(tmpi_world_rank()) : 0 }
    /// World size (1 when MPI is not active).
    public static var worldSize: Int { isActive ? Int(tmpi_world_size()) : 1 }

    public static func finalize() {
        if isActive { _ = tmpi_finalize() }
    }

    /// Print `message` to stderr naming this rank, then MPI_Abort the job (never returns).
    public static func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("turing rank \(worldRank) of \(worldSize): \(message)\nturing: aborting the MPI job (MPI_Abort)\n".utf8))
        if isActive { tmpi_abort(code) }
        exit(code)
    }

    static func errorString(_ rc: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 512)
        tmpi_error_string(rc, &buf, Int32(buf.count))
        return String(cString: buf)
    }
}
