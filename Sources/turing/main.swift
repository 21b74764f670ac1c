// turing: the command-line entry point; each subcommand is a thin struct over the libraries.
//
// Under `mpirun` (Open MPI sets OMPI_COMM_WORLD_SIZE) every process runs the same command as one
// rank of a DistributedEngine: MPI is initialised here (never otherwise), only world rank 0 writes
// to stdout, stderr logs and output files (`isPrimaryRank`), MPI is finalised at a clean exit, and
// an error on any rank aborts the whole job with MPI_Abort (the other ranks would otherwise wait
// for it). A wrong process count is reported by every rank, which exits with status 1 (no abort).
import ArgumentParser
import Collectives
import Engine
import Foundation
import TensorCore

struct Turing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turing",
        abstract: "Evaluate, run and fine-tune Megatron-style GPT checkpoints.",
        subcommands: [DemoCommand.self, GenerateCommand.self, ScoreCommand.self, EvalCommand.self, CompareCommand.self,
                      FinetuneCommand.self, InspectCommand.self, ConvertCommand.self, TokenizeCommand.self, BenchCommand.self, ServeCommand.self,
                      // developer tools (Developer/), hidden from --help
                      MakeDemoCommand.self, TrainBenchCommand.self, TrainCheckCommand.self],
        defaultSubcommand: DemoCommand.self)
}

if !isPrimaryRank {
    // Every rank runs the same command; only rank 0's stdout is the program's output.
    let null = open("/dev/null", O_WRONLY)
    if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
}
EngineWarnings.handler = { log("warning: " + $0) }

/// `--limit -1` would read "-1" as an option ("Missing value for --limit"): join an option and a
/// negative number into `--limit=-1`, so the option's own check says what is wrong with the value.
func joinNegativeValues(_ a: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < a.count {
        if a[i].hasPrefix("--"), !a[i].contains("="), i + 1 < a.count, a[i + 1].count > 1, a[i + 1].hasPrefix("-"),
           Double(a[i + 1]) != nil {
            out.append(a[i] + "=" + a[i + 1]); i += 2
        } else { out.append(a[i]); i += 1 }
    }
    return out
}

/// Errors as a person should read them: Foundation's in plain words, control characters escaped;
/// ArgumentParser's own (usage, help) unchanged.
func humane(_ error: Error) -> Error {
    if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") { return error }
    return CLIError(escapeControls(plainReason(error)))
}

do {
    var command = try Turing.parseAsRoot(joinNegativeValues(Array(CommandLine.arguments.dropFirst())))
    try command.run()
    try flushStandardOutput()   // a full disk or closed pipe under stdout is an error, not exit 0
    MPIRuntime.finalize()
} catch let raw {
    let error = humane(raw)
    let code = Turing.exitCode(for: error)
    let rank = MPIRuntime.worldRank, size = MPIRuntime.worldSize
    // A wrong process count is seen by every rank alike: exit cleanly. Any other error may be on
    // this rank alone while the others wait in a collective: abort the job.
    if code != .success && MPIRuntime.worldSize > 1 && !(raw is DistributedError) {
        MPIRuntime.abort(Turing.message(for: error))
    }
    if !MPIRuntime.isActive || (isPrimaryRank && code == .success) {   // help, usage, plain errors
        MPIRuntime.finalize()
        Turing.exit(withError: error)
    }
    // One write per rank, so mpirun does not interleave the messages; then finalize (it waits for
    // every rank), so mpirun does not kill a rank that has yet to print when the first one exits.
    if code != .success { FileHandle.standardError.write(Data("turing rank \(rank) of \(size): Error: \(Turing.message(for: error))\n".utf8)) }
    MPIRuntime.finalize()
    exit(code.rawValue)
}
