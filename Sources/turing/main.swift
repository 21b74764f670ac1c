import ArgumentParser
struct Turing: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "turing", abstract: "Evaluate, run and fine-tune Megatron-style GPT checkpoints.")
}
Turing.main()
