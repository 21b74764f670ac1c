// turing inspect: what a checkpoint is, and every problem found in it, all at once.

import ArgumentParser
import Foundation
import Checkpoints
import Tokenizers
import TensorCore

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Describe a checkpoint: format, layout, architecture, files, problems (or, with --system, this machine).")
    @Argument(help: "Checkpoint directory.") var path: String?
    @Flag(help: "Describe this machine instead: CPU, instruction set found and used, kernels, threads.") var system = false
    @Option(name: .customLong("vocab-size"), help: "Real vocabulary size when the checkpoint does not record it.") var vocabSize: Int?
    @Option(name: .customLong("megatron-arg"), help: "A Megatron arg as key=value, over the saved args (repeatable).") var megatronArg: [String] = []
    @Flag(name: .customLong("no-verify-checksums"), help: "Skip the CRC-32 check of each .pt record.") var noVerifyChecksums = false
    @Flag(name: .customLong("args"), help: "List every saved training arg (Megatron saves), e.g. 'exit_signal: SIGTERM'.") var listArgs = false
    @Option(help: "Tokenizer folder or file to check (else the one the saved args or the folder name).") var tokenizer: String?

    func validate() throws {
        if !system && path == nil { throw ValidationError("give a checkpoint directory, or --system") }
        if let v = vocabSize, v < 1 { throw ValidationError("--vocab-size must be >= 1, found \(v)") }
    }

    func run() throws {
        applyChecksumFlag(noVerifyChecksums)
        if system {
            print(Compute.systemSummary)
            if path == nil { return }
        }
        guard let path else { return }
        var r = CheckpointLoader.inspect(URL(fileURLWithPath: path), options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArg)))
        r.showArgs = listArgs
        print(r)
        let saved = r.args.isEmpty ? nil : MegatronTokenizerArgs(fields: r.args)
        do {
            if let t = try TokenizerLoader.find(besideCheckpoint: path, megatronArgs: saved, tokenizerPath: tokenizer) { print("  tokenizer: \(t.description)") }
            else { print("  tokenizer: none found beside the checkpoint (commands take --tokenizer PATH)") }
        } catch { print("  tokenizer: \(error)") }
        if r.format == nil || r.config == nil { throw ExitCode(2) }
    }
}
