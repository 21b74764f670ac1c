// turing demo (the default command): the main job on a default model when no checkpoint is given.
//
// Uses checkpoints/demo when it exists, else the trained stories260K model from ../shared/data
// (or $TURING_SHARED_DATA). It generates greedily, samples with a seed, runs the same prompt at
// TP 2 x PP 2 to show the layouts agree, and scores a plausible against an implausible ending.

import ArgumentParser
import Evaluation
import Tasks
import Foundation
import TuringKit
import Checkpoints
import Engine
import Model
import Tokenizers

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Run Turing end to end on the default model.")
    @Option(help: "Checkpoint (default: the built-in demo model).") var checkpoint: String?
    @Option(help: "Prompt (default: one that suits the model).") var prompt: String?
    @Option(name: .customLong("max-tokens")) var maxTokens = 80

    /// checkpoints/demo in the repository (found from the executable or the working directory),
    /// else the shared data's stories260K.
    func defaultCheckpoint() throws -> String {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var roots: [URL] = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 { roots.append(dir); dir = dir.deletingLastPathComponent() }
        for r in roots where TuringFormat.resolve(r.appendingPathComponent("checkpoints/demo")) != nil {
            return r.appendingPathComponent("checkpoints/demo").standardizedFileURL.path
        }
        var candidates = roots.map { $0.appendingPathComponent("checkpoints/demo").path }
        if let shared = ProcessInfo.processInfo.environment["TURING_SHARED_DATA"] {
            candidates.append(shared + "/models/stories260K/stories260K.bin")
        }
        candidates += roots.map { $0.appendingPathComponent("../shared/data/models/stories260K/stories260K.bin").standardizedFileURL.path }
        if let c = candidates.first(where: { FileManager.default.fileExists(atPath: $0) && !$0.hasSuffix("checkpoints/demo") }) { return c }
        throw CLIError("no default model: looked for\n  " + candidates.joined(separator: "\n  ") + "\npass --checkpoint PATH (or run scripts/make_demo.sh)")
    }

    func run() throws {
        let path = try checkpoint ?? defaultCheckpoint()
        let source = ModelSource(checkpoint: path)
        let t0 = now()
        let loaded = try source.open()
        let (model, tokOpt, ckpt) = (loaded.engine, loaded.tokenizer, loaded.checkpoint)
        guard let tok = tokOpt else { throw CLIError("no tokenizer beside \(path)") }
        let c = ckpt.config
        print("model: \(path)\n  \(ckpt.format), \(c.numLayers) layers, hidden \(c.hiddenSize), \(c.numHeads) heads / \(c.numKVHeads) kv, vocab \(c.vocabSize); loaded in \(String(format: "%.2f", now() - t0)) s\n")
        let isDemo = ckpt.format == "turing" && path.hasSuffix("checkpoints/demo")
        let prompt = self.prompt ?? (isDemo ? "the dog says woof . the sky is" : "Once upon a time")
        let ids = tok.encode(prompt)
        let stops = generationStopTokens(tok)
        func run(_ m: CausalLM, _ s: SamplingParams) throws -> (String, Double, Int) {
            let t = now()
            let out = try Generator(model: m).generate([GenerationRequest(prompt: ids, maxTokens: maxTokens, sampling: s, stopTokens: stops)])[0]
            let all = tok.decodeBytes(ids + out), head = tok.decodeBytes(ids).count
            return (String(decoding: all[head...], as: UTF8.self), now() - t, out.count)
        }
        let (greedy, dt, n) = try run(model, SamplingParams())
        print("greedy, TP 1 x PP 1 (\(n) tokens, \(String(format: "%.0f", Double(n) / dt)) tokens/s):\n  \(prompt)\(greedy)\n")
        let sharded = try source.open(layout: ParallelLayout(tp: 2, pp: 2)).engine
        let (g2, _, _) = try run(sharded, SamplingParams())
        print("greedy, TP 2 x PP 2 in-process: \(g2 == greedy ? "identical text" : "DIFFERENT TEXT:\n  \(prompt)\(g2)")\n")
        let (sampled, _, _) = try run(model, SamplingParams(temperature: 0.8, topP: 0.9, seed: 42))
        print("sampled (temperature 0.8, top-p 0.9, seed 42):\n  \(prompt)\(sampled)\n")
        let ctx = isDemo ? "after four comes" : "Lily went to the park. She saw a big dog. The dog"
        let choices = isDemo ? [" five .", " nine ."] : [" was happy to see her.", " ate the moon with a spoon."]
        let prefix = try prefixToken(tok, c)
        let reqs = try choices.map { let (a, b) = try lmEvalEncodePair(tok, ctx, $0, prefix: prefix); return LoglikelihoodRequest(context: a, continuation: b) }
        let res = try Scorer(model: model).loglikelihood(reqs)
        print("score (lm-eval loglikelihood): \"\(ctx)...\"")
        for (ch, r) in zip(choices, res) { print(String(format: "  %8.3f  (%d tokens)  %@", r.logprob, r.tokens, ch)) }
        if isDemo { try demoTable(model: model, ckpt: ckpt, tok: tok, tasksDir: URL(fileURLWithPath: path).appendingPathComponent("../../tasks").standardizedFileURL) }
        if g2 != greedy { throw ExitCode(1) }
    }

    /// Zero- and 3-shot accuracy on the demo tasks (tasks/demo_*.yaml, through the same Evaluator as
    /// `turing eval`), trained model against the same architecture untrained (random weights): the
    /// trained model should be far above chance (50%), the untrained near it.
    func demoTable(model: CausalLM, ckpt: CanonicalCheckpoint, tok: Tokenizer, tasksDir: URL) throws {
        let untrained = DecoderModel(weights: try DecoderWeights(.random(config: ckpt.config, seed: 7, std: 0.02)))
        let trainedEval = try Evaluator(model: model, tokenizer: tok), untrainedEval = try Evaluator(model: untrained, tokenizer: tok)
        print("\ndemo tasks (2 choices each, chance = 50%; the same numbers as `turing eval --tasks demo_facts,demo_sounds,demo_count --shots 0,3`):")
        print("| task | docs | shots | trained acc | untrained acc |\n|---|---:|---:|---:|---:|")
        for name in ["demo_facts", "demo_sounds", "demo_count"] {
            let task = try LoadedTask(spec: try TaskSpec.load(named: name, in: tasksDir.path), dataDir: tasksDir.path)
            for shots in [0, 3] {
                let a = try trainedEval.evaluate(task, numFewshot: shots, limit: nil), b = try untrainedEval.evaluate(task, numFewshot: shots, limit: nil)
                func acc(_ r: TaskResult) -> Double { (r.metrics.first { $0.name == "acc" }?.value ?? .nan) * 100 }
                print(String(format: "| %@ | %d | %d | %.1f%% | %.1f%% |", name, a.docs.count, shots, acc(a), acc(b)))
            }
        }
    }
}
