// turing train-bench: training tokens/s and peak RSS for one model shape (default GPT-2 124M),
// forward + backward + AdamW per step, best of --reps after a warm-up, at TP x PP in-process ranks
// (the machine's cores shared out over them). scripts/bench_train.py runs the same step in PyTorch
// for the ratio. peak_rss_mb is the training steps' high-water mark (reset after loading, Linux's
// clear_refs), peak_rss_load_mb the process's peak up to then (random init, cutting into ranks).

import ArgumentParser
import Foundation
import Engine
import Model
import TensorCore
import Training

struct TrainBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-bench", abstract: "Developer: measure training step throughput.", shouldDisplay: false)
    @Option var layers = 12
    @Option var hidden = 768
    @Option var heads = 12
    @Option var vocab = 50257
    @Option var batch = 4
    @Option(name: .customLong("seq-length")) var seqLength = 128
    @Option var threads = 2
    @Option var reps = 3
    @Option var tp = 1
    @Option var pp = 1
    @Option(name: .customLong("micro-batch"), help: "Sequences per micro-batch (default: the whole batch, one micro-batch).") var microBatch: Int?
    @Flag(name: .customLong("recompute-activations")) var recompute = false

    func run() throws {
        keepFreedMemory()    // as FinetuneJob.run: steps reuse their activation buffers
        Compute.setThreads(threads)
        let config = ModelConfig(vocabSize: vocab, hiddenSize: hidden, numLayers: layers, numHeads: heads, maxPositions: max(1024, seqLength), activation: .geluTanh)
        let grid = ParallelLayout(tp: tp, pp: pp)
        let ex = try InProcessTraining(config: config, grid: grid, recompute: recompute)
        if tp * pp == 1 { Compute.setThreads(threads) }
        let canon = ParameterLayout(config: config)
        try ex.load(TrainerState(params: try canon.flatten(.random(config: config, seed: 1)), adam: AdamW(layout: canon), step: 0))
        var rng = SplitMix64(seed: 3)
        let ids = (0..<batch).map { _ in (0...seqLength).map { _ in Int(rng.next() % UInt64(vocab)) } }
        let mb = microBatch ?? batch
        let micro = stride(from: 0, to: batch, by: mb).map { s in
            TrainingBatch(inputs: ids[s..<min(batch, s + mb)].map { Array($0.dropLast()) }, targets: ids[s..<min(batch, s + mb)].map { Array($0.dropFirst()) })
        }
        let loadPeak = peakRSSMegabytes()
        let reset = resetPeakRSS()        // from here the high-water mark is the training steps'
        var best = Double.infinity
        for r in 0...reps {
            let t0 = now()
            _ = try ex.step(micro: micro, lr: 1e-4, clip: 1)
            let dt = now() - t0
            if r > 0 { best = min(best, dt) }
        }
        let out: [String: Double] = ["train_tokens_per_s": Double(batch * seqLength) / best, "step_seconds": best, "peak_rss_load_mb": loadPeak,
                                   "peak_rss_mb": reset ? highWaterRSSMegabytes() ?? peakRSSMegabytes() : peakRSSMegabytes(), "params": Double(canon.total), "tp": Double(tp), "pp": Double(pp)]
        print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
    }
}
