// turing demo (the default command): the main job on a default model when no checkpoint is given.
//
// Uses checkpoints/demo when it exists, else the trained stories260K model from ../shared/data
// (or $TURING_SHARED_DATA). It generates greedily, samples with a seed, runs the same prompt at
// TP 2 x PP 2 to show the layouts agree, and scores a plausible against an implausible ending.

import ArgumentParser
import Evaluation
import Foundation
import Checkpoints
import Engine
import Model
import Tokenizers

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Run Turing end to end on the default model.")
    @Option(help: "Checkpoint (default: the built-in demo model).") var checkpoint: String?
    @Option(help: "Prompt.") var prompt = "Once upon a time"
    @Option(name: .customLong("max-tokens")) var maxTokens = 80

    /// checkpoints/demo in the repository (found from the executable or the working directory),
    /// else the shared data's stories260K.
    func defaultCheckpoint() throws -> String {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var roots: [URL] = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 { roots.append(dir); dir = dir.deletingLastPathComponent() }
        var candidates = roots.map { $0.appendingPathComponent("checkpoints/demo/model.bin").path }
        if let shared = ProcessInfo.processInfo.environment["TURING_SHARED_DATA"] {
            candidates.append(shared + "/models/stories260K/stories260K.bin")
        }
        candidates += roots.map { $0.appendingPathComponent("../shared/data/models/stories260K/stories260K.bin").standardizedFileURL.path }
        if let c = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return c }
        throw CLIError("no default model: looked for\n  " + candidates.joined(separator: "\n  ") + "\npass --checkpoint PATH")
    }

    func run() throws {
        let path = try checkpoint ?? defaultCheckpoint()
        var opts = try CheckpointOptions.parse(["--checkpoint", path])
        opts.threads = nil
        let t0 = now()
        let (model, tokOpt, ckpt) = try opts.load(layout: EngineLayout())
        guard let tok = tokOpt else { throw CLIError("no tokenizer beside \(path)") }
        let c = ckpt.config
        print("model: \(path)\n  \(ckpt.format), \(c.numLayers) layers, hidden \(c.hiddenSize), \(c.numHeads) heads / \(c.numKVHeads) kv, vocab \(c.vocabSize); loaded in \(String(format: "%.2f", now() - t0)) s\n")
        let ids = tok.encode(prompt)
        let stops: Set<Int> = Set([tok.eosToken, tok is Llama2cTokenizer ? tok.bosToken : nil].compactMap { $0 })
        func run(_ m: CausalLM, _ s: SamplingParams) throws -> (String, Double, Int) {
            let t = now()
            let out = try Generator(model: m).generate([GenerationRequest(prompt: ids, maxTokens: maxTokens, sampling: s, stopTokens: stops)])[0]
            let all = tok.decodeBytes(ids + out), head = tok.decodeBytes(ids).count
            return (String(decoding: all[head...], as: UTF8.self), now() - t, out.count)
        }
        let (greedy, dt, n) = try run(model, SamplingParams())
        print("greedy, TP 1 x PP 1 (\(n) tokens, \(String(format: "%.0f", Double(n) / dt)) tokens/s):\n  \(prompt)\(greedy)\n")
        let sharded = try ShardedEngine(ckpt, layout: EngineLayout(tp: 2, pp: 2))
        let (g2, _, _) = try run(sharded, SamplingParams())
        print("greedy, TP 2 x PP 2 in-process: \(g2 == greedy ? "identical text" : "DIFFERENT TEXT:\n  \(prompt)\(g2)")\n")
        let (sampled, _, _) = try run(model, SamplingParams(temperature: 0.8, topP: 0.9, seed: 42))
        print("sampled (temperature 0.8, top-p 0.9, seed 42):\n  \(prompt)\(sampled)\n")
        let ctx = "Lily went to the park. She saw a big dog. The dog"
        let choices = [" was happy to see her.", " ate the moon with a spoon."]
        let prefix = try prefixToken(tok, c)
        let reqs = choices.map { let (a, b) = lmEvalEncodePair(tok, ctx, $0, prefix: prefix); return LoglikelihoodRequest(context: a, continuation: b) }
        let res = try Scorer(model: model).loglikelihood(reqs)
        print("score (lm-eval loglikelihood): \"\(ctx)...\"")
        for (ch, r) in zip(choices, res) { print(String(format: "  %8.3f  (%d tokens)  %@", r.logprob, r.tokens, ch)) }
        if sharded.layout.tp > 0 && g2 != greedy { throw ExitCode(1) }
    }
}
