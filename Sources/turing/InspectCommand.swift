// turing inspect: what a checkpoint is, and every problem found in it, all at once.

import ArgumentParser
import Foundation
import Checkpoints

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Describe a checkpoint: format, layout, architecture, files, problems.")
    @Argument(help: "Checkpoint directory.") var path: String
    @Option(name: .customLong("vocab-size"), help: "Real vocabulary size when the checkpoint does not record it.") var vocabSize: Int?

    func run() throws {
        let r = CheckpointLoader.inspect(URL(fileURLWithPath: path), options: LoadOptions(vocabSize: vocabSize))
        print(r)
        if r.format == nil || r.config == nil { throw ExitCode(2) }
    }
}
