// turing bench: prefill/decode throughput, TTFT and peak RSS on a GPT-2-124M-shaped random model
// (or a given checkpoint). Compare with scripts/bench_pytorch.py run in the same session.

import ArgumentParser
import Foundation
import Engine
import Model
import TensorCore

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure prefill and decode speed.")

    @Option(help: "Layers of the random model.") var layers: Int = 12
    @Option(help: "Hidden size of the random model.") var hidden: Int = 768
    @Option(help: "Heads of the random model.") var heads: Int = 12
    @Option(help: "Vocabulary of the random model.") var vocab: Int = 50257
    @Option(help: "BLAS threads.") var threads: Int = 2
    @Option(name: .customLong("prompt-length")) var promptLength: Int = 128
    @Option(name: .customLong("decode-tokens")) var decodeTokens: Int = 64
    @Option(help: "Timed repetitions (best is reported).") var reps: Int = 3
    @Flag(help: "Print JSON only.") var json = false

    func run() throws {
        BLAS.setThreads(threads)
        let config = ModelConfig(vocabSize: vocab, hiddenSize: hidden, numLayers: layers, numHeads: heads,
                                 maxPositions: max(1024, promptLength + decodeTokens + 1), activation: .geluTanh)
        let model = DecoderModel(weights: try DecoderWeights(.random(config: config)))
        if !json { log("model: \(layers) layers, \(hidden) hidden, \(heads) heads, vocab \(vocab); \(threads) BLAS threads") }
        var res = try Benchmark.run(model: model, promptLength: promptLength, decodeTokens: decodeTokens, reps: reps, log: json ? { _ in } : log)
        res.blasThreads = threads
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try enc.encode(res), as: UTF8.self))
    }
}
