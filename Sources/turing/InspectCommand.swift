// turing inspect: what a checkpoint is, and every problem found in it, all at once.

import ArgumentParser
import Foundation
import Checkpoints

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Describe a checkpoint: format, layout, architecture, files, problems.")
    @Argument(help: "Checkpoint directory.") var path: String
    @Option(name: .customLong("vocab-size"), help: "Real vocabulary size when the checkpoint does not record it.") var vocabSize: Int?
    @Option(name: .customLong("megatron-arg"), help: "A Megatron arg as key=value, over the saved args (repeatable).") var megatronArg: [String] = []
    @Flag(name: .customLong("args"), help: "List every saved training arg (Megatron saves), e.g. 'exit_signal: SIGTERM'.") var listArgs = false

    func run() throws {
        var r = CheckpointLoader.inspect(URL(fileURLWithPath: path), options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArg)))
        r.showArgs = listArgs
        print(r)
        if r.format == nil || r.config == nil { throw ExitCode(2) }
    }
}
