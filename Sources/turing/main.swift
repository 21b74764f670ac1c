// turing: the command-line entry point; each subcommand is a thin struct over the libraries.
import ArgumentParser

struct Turing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turing",
        abstract: "Evaluate, run and fine-tune Megatron-style GPT checkpoints.",
        subcommands: [DemoCommand.self, GenerateCommand.self, ScoreCommand.self, TokenizeCommand.self,
                      InspectCommand.self, ConvertCommand.self, EvalCommand.self, FinetuneCommand.self, MakeDemoCommand.self,
                      BenchCommand.self, TrainBenchCommand.self],
        defaultSubcommand: DemoCommand.self)
}
Turing.main()
