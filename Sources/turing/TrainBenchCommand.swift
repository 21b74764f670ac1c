// turing train-bench: training tokens/s and peak RSS for one model shape (default GPT-2 124M),
// forward + backward + AdamW per step, best of --reps after a warm-up. scripts/bench_train.py runs
// the same step in PyTorch for the ratio.

import ArgumentParser
import Foundation
import Engine
import Model
import TensorCore
import Training

struct TrainBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-bench", abstract: "Measure training step throughput.")
    @Option var layers = 12
    @Option var hidden = 768
    @Option var heads = 12
    @Option var vocab = 50257
    @Option var batch = 4
    @Option(name: .customLong("seq-length")) var seqLength = 128
    @Option var threads = 2
    @Option var reps = 3

    func run() throws {
        BLAS.setThreads(threads)
        let config = ModelConfig(vocabSize: vocab, hiddenSize: hidden, numLayers: layers, numHeads: heads, maxPositions: max(1024, seqLength), activation: .geluTanh)
        let model = try DecoderTraining(config: config)
        var params = try model.layout.flatten(.random(config: config, seed: 1))
        var grads = [Float](repeating: 0, count: params.count)
        var opt = AdamW(layout: model.layout)
        var rng = SplitMix64(seed: 3)
        let ids = (0..<batch).map { _ in (0...seqLength).map { _ in Int(rng.next() % UInt64(vocab)) } }
        let b = TrainingBatch(inputs: ids.map { Array($0.dropLast()) }, targets: ids.map { Array($0.dropFirst()) })
        var best = Double.infinity
        for r in 0...reps {
            let t0 = now()
            _ = try model.lossAndGradients(params: params, grads: &grads, batch: b)
            opt.update(params: &params, grads: grads, lr: 1e-4)
            let dt = now() - t0
            if r > 0 { best = min(best, dt) }
        }
        let out: [String: Double] = ["train_tokens_per_s": Double(batch * seqLength) / best, "step_seconds": best, "peak_rss_mb": peakRSSMegabytes(), "params": Double(model.layout.total)]
        print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
    }
}
