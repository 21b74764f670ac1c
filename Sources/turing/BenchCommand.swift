// turing bench: prefill/decode throughput, TTFT and peak RSS on a GPT-2-124M-shaped random model
// (or a given checkpoint). Compare with scripts/bench_pytorch.py run in the same session.
// --tp/--pp run the random model sharded: in-process ranks (ShardedEngine, cores shared out), or
// one rank per process under mpirun (DistributedEngine; rank 0 prints, and reports the time spent
// inside MPI calls per layer per forward).

import ArgumentParser
import Foundation
import Collectives
import Engine
import Model
import TensorCore

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure prefill and decode speed.")

    @Option(help: "Layers of the random model.") var layers: Int = 12
    @Option(help: "Hidden size of the random model.") var hidden: Int = 768
    @Option(help: "Heads of the random model.") var heads: Int = 12
    @Option(help: "Vocabulary of the random model.") var vocab: Int = 50257
    @Option(help: "BLAS threads (TP 1 x PP 1 in one process; sharded runs share the cores out).") var threads: Int = 2
    @Option(name: .customLong("prompt-length")) var promptLength: Int = 128
    @Option(name: .customLong("decode-tokens")) var decodeTokens: Int = 64
    @Option(help: "Timed repetitions (best is reported).") var reps: Int = 3
    @Option(help: "Batch sizes to measure (repeatable).") var batch: [Int] = [1, 8]
    @Flag(help: "Also measure scoring: the prompts forwarded with logits for every position.") var score = false
    @OptionGroup var parallel: ParallelOptions
    @Flag(help: "Print JSON only.") var json = false

    func run() throws {
        Compute.setThreads(threads)
        let config = ModelConfig(vocabSize: vocab, hiddenSize: hidden, numLayers: layers, numHeads: heads,
                                 maxPositions: max(1024, promptLength + decodeTokens + 1), activation: .geluTanh)
        let layout = parallel.layout
        if MPIRuntime.isActive { try DistributedEngine.checkProcessCount(layout, worldSize: MPIRuntime.worldSize) }
        let ckpt = CanonicalCheckpoint.random(config: config)   // seeded: every process builds the same weights
        let model: CausalLM
        if MPIRuntime.isActive {
            model = try DistributedEngine(ckpt, layout: layout, world: try MPICollective.world())
        } else if layout.tp == 1 && layout.pp == 1 {
            model = DecoderModel(weights: try DecoderWeights(ckpt))
        } else {
            model = try ShardedEngine(ckpt, layout: layout)
        }
        let mode = MPIRuntime.isActive ? "\(MPIRuntime.worldSize) MPI processes" : "in-process"
        log("model: \(layers) layers, \(hidden) hidden, \(heads) heads, vocab \(vocab); \(layout) \(mode), micro-batches \(layout.microBatches); \(Compute.threads) BLAS threads per rank")
        var res = try Benchmark.run(model: model, promptLength: promptLength, decodeTokens: decodeTokens, batches: batch, reps: reps, score: score,
                                    log: json ? { _ in } : log)
        res.blasThreads = Compute.threads
        res.layout = "tp\(layout.tp)-pp\(layout.pp)-\(MPIRuntime.isActive ? "mpi" : "inproc")"
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try enc.encode(res), as: UTF8.self))
    }
}
