// Option groups shared by the subcommands, one per concern.

import ArgumentParser
import Foundation
import Engine
import Collectives

struct CheckpointOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint: an HF folder, a Megatron or DeepSpeed save directory, or a llama2.c .bin file.")
    var checkpoint: String

    @Option(help: "Tokenizer: a folder with tokenizer.json or vocab.json + merges.txt, a tokenizer.json, or a llama2.c tokenizer.bin.")
    var tokenizer: String?

    @Option(name: .customLong("vocab-file"), help: "GPT-2 vocab.json (Megatron's --vocab-file).")
    var vocabFile: String?

    @Option(name: .customLong("merge-file"), help: "GPT-2 merges.txt (Megatron's --merge-file).")
    var mergeFile: String?

    @Option(help: "BLAS threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("megatron-arg"), help: "A Megatron arg as key=value, over the saved args (repeatable), e.g. ffn_hidden_size=3072 for checkpoints that do not record it.")
    var megatronArg: [String] = []
}

struct SamplingOptions: ParsableArguments {
    @Option(name: .customLong("max-tokens"), help: "Tokens to generate per prompt.")
    var maxTokens: Int = 128
    @Option(help: "Temperature; 0 is greedy.")
    var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0: off).")
    var topK: Int = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1: off).")
    var topP: Float = 1
    @Option(help: "Sampling seed.")
    var seed: UInt64 = 1234
    @Option(help: "Stop when this text appears (repeatable).")
    var stop: [String] = []

    var params: SamplingParams { SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed) }

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be >= 0, found \(maxTokens)") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be >= 0, found \(temperature)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be >= 0, found \(topK)") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], found \(topP)") }
    }
}


struct StandardError: TextOutputStream {
    mutating func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
var stderrStream = StandardError()
/// Logs and progress go to stderr, from the primary rank only.
func log(_ s: String) { if isPrimaryRank { print(s, to: &stderrStream) } }

/// True on the process that prints results and writes files: world rank 0 under mpirun (MPI is
/// initialised on first use, only when launched by mpirun), always true otherwise.
let isPrimaryRank: Bool = {
    guard MPIRuntime.launchedByMPIRun else { return true }
    do { try MPIRuntime.initialize() } catch { MPIRuntime.abort("\(error)") }
    return MPIRuntime.worldRank == 0
}()
