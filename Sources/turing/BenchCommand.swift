// turing bench: prefill/decode throughput, TTFT and peak RSS on a GPT-2-124M-shaped random model
// (or a given checkpoint). scripts/bench.sh runs it beside llama.cpp and PyTorch.
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
    @Option(help: "Kernel threads (TP 1 x PP 1 in one process; sharded runs share the cores out).") var threads: Int = 2
    @Option(name: .customLong("prompt-length")) var promptLength: Int = 128
    @Option(name: .customLong("decode-tokens")) var decodeTokens: Int = 64
    @Option(help: "Timed repetitions (best is reported).") var reps: Int = 3
    @Option(help: "Batch sizes to measure (repeatable).") var batch: [Int] = [1, 8]
    @Flag(help: "Also measure scoring: the prompts forwarded with logits for every position.") var score = false
    @OptionGroup var layoutOptions: LayoutOptions
    @Option(help: "Weights in memory: float32 or bfloat16.") var dtype: ComputeDType = .float32
    @Option(name: .customLong("micro-batches"), help: "Micro-batches per pipelined forward (default: PP).") var microBatches: Int?
    @Flag(help: "Print JSON only.") var json = false

    func run() throws {
        Compute.setThreads(threads)
        let config = ModelConfig(vocabSize: vocab, hiddenSize: hidden, numLayers: layers, numHeads: heads,
                                 maxPositions: max(1024, promptLength + decodeTokens + 1), activation: .geluTanh)
        let layout = ParallelLayout(tp: layoutOptions.tp, pp: layoutOptions.pp)
        if MPIRuntime.isActive { try DistributedEngine.checkProcessCount(layout, worldSize: MPIRuntime.worldSize) }
        // the seeded random source is dropped once the engine holds its weights: the peak RSS reported
        // is the run's (weights, caches, activations), as a user's process holds it after the load
        let model: CausalLM = try {
            let ckpt = CanonicalCheckpoint.random(config: config)   // seeded: every process builds the same weights
            if MPIRuntime.isActive { return try DistributedEngine(ckpt, layout: layout, microBatches: microBatches, dtype: dtype, world: try MPICollective.world()) }
            if layout.tp == 1 && layout.pp == 1 { return DecoderModel(weights: try DecoderWeights(ckpt, dtype: dtype)) }
            return try ShardedEngine(ckpt, layout: layout, microBatches: microBatches, dtype: dtype)
        }()
        releaseFreedMemory()   // the load's transients: Benchmark.run's peaks start from the loaded model
        let mode = MPIRuntime.isActive ? "\(MPIRuntime.worldSize) MPI processes" : "in-process"
        log(Compute.systemSummary)
        log("model: \(layers) layers, \(hidden) hidden, \(heads) heads, vocab \(vocab), \(dtype.rawValue) weights; \(layout) \(mode), micro-batches \(microBatches ?? layout.pp); \(Compute.threads) threads per rank")
        var res = try Benchmark.run(model: model, promptLength: promptLength, decodeTokens: decodeTokens, batches: batch, reps: reps, score: score,
                                    log: json ? { _ in } : log)
        res.threads = Compute.threads
        res.dtype = dtype.rawValue
        res.isa = Compute.isa.description
        res.cpu = cpuModelName()
        res.layout = "tp\(layout.tp)-pp\(layout.pp)-\(MPIRuntime.isActive ? "mpi" : "inproc")"
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try enc.encode(res), as: UTF8.self))
    }
}
