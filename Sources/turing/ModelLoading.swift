// Finding and loading what a command needs: the checkpoint (any format), its tokenizer, the engine
// at the requested layout. Errors name the path and what was looked for.

import ArgumentParser
import Foundation
import Checkpoints
import Collectives
import Engine
import Model
import TensorCore
import Tokenizers

struct ParallelOptions: ParsableArguments {
    @Option(help: "Tensor-parallel ranks (in-process threads; under mpirun, processes).") var tp: Int = 1
    @Option(help: "Pipeline-parallel stages (in-process threads; under mpirun, processes).") var pp: Int = 1
    @Option(name: .customLong("micro-batches"), help: "Micro-batches per pipelined forward (default: PP).") var microBatches: Int?

    @Option(help: "Weights in memory: float32, or bfloat16 (narrowed once at load; f32 activations and accumulation).")
    var dtype: ComputeDType = .float32

    var layout: EngineLayout { EngineLayout(tp: tp, pp: pp, microBatches: microBatches) }

    func validate() throws {
        if let m = microBatches, m < 1 { throw ValidationError("--micro-batches must be >= 1, found \(m)") }
    }
}

extension ComputeDType: ExpressibleByArgument {}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension CheckpointOptions {
    var checkpointURL: URL { URL(fileURLWithPath: checkpoint) }

    func loadTokenizer() throws -> Tokenizer? {
        if let v = vocabFile, let m = mergeFile {
            return try GPT2Tokenizer(vocabFile: v, mergesFile: m)
        }
        if (vocabFile == nil) != (mergeFile == nil) { throw CLIError("--vocab-file and --merge-file go together") }
        if let t = tokenizer { return try tokenizerAt(URL(fileURLWithPath: t), required: true) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDir) else { return nil }
        if isDir.boolValue { return try tokenizerAt(checkpointURL, required: false) }
        // llama2.c: tokenizer.bin or tok*.bin beside the checkpoint
        let dir = checkpointURL.deletingLastPathComponent()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        if let n = (["tokenizer.bin"] + names.filter { $0.hasPrefix("tok") && $0.hasSuffix(".bin") }.sorted()).first(where: names.contains) {
            return try Llama2cTokenizer(path: dir.appendingPathComponent(n).path)
        }
        return nil
    }

    func loadCheckpoint(vocabSize: Int?) throws -> CanonicalCheckpoint { applyChecksumFlag(noVerifyChecksums); return try loadAnyCheckpoint(checkpoint, vocabSize: vocabSize, megatronArgs: megatronArg) }

    /// Checkpoint, tokenizer (when one is found) and the engine at `layout`: under mpirun this
    /// process's rank of a `DistributedEngine` (the process count must be TP x PP). A Megatron,
    /// DeepSpeed or torch_dist save is loaded straight into the ranks' pieces (`CheckpointLoader.loadSplit`)
    /// in-process at TP x PP > 1, and under mpirun each process reads only its own shard; the returned
    /// checkpoint then holds the config only, and no canonical copy of the weights is made.
    /// The engine packs its own copy of the weights (f32 or bf16); the loaded tensors are dropped once it
    /// is built, so `checkpoint` holds the config and format only. `weightsHash` is computed from the
    /// loaded tensors before they go (in-process), or re-read a layer at a time (mpirun).
    func load(layout: EngineLayout, dtype: ComputeDType = .float32, needTokenizer: Bool = true, weightsHash wantHash: Bool = false) throws -> LoadedModel {
        if MPIRuntime.isActive { try DistributedEngine.checkProcessCount(layout, worldSize: MPIRuntime.worldSize) }
        if let threads { Compute.setThreads(threads) }
        applyChecksumFlag(noVerifyChecksums)
        defer { releaseFreedMemory() }   // the loaded tensors, once the engine holds its packed copy
        guard FileManager.default.fileExists(atPath: checkpoint) else { throw CLIError("checkpoint not found: \(checkpoint)") }
        let tok = try loadTokenizer()
        if needTokenizer && tok == nil {
            throw CLIError("no tokenizer found for \(checkpoint): pass --tokenizer DIR or --vocab-file F --merge-file F")
        }
        // (detect recognises only the checkpoint formats: a Turing save or a llama2.c file is loaded whole below)
        if MPIRuntime.isActive || layout.tp * layout.pp > 1, let format = try? CheckpointLoader.detect(checkpointURL), format != .hf {
            var options = LoadOptions(vocabSize: tok.map { $0.vocabSize }, argOverrides: try MegatronArgs.parseOverrides(megatronArg))
            if MPIRuntime.isActive {   // this process reads its own shard only
                let (t, p) = DistributedEngine.rank(of: MPIRuntime.worldRank, layout: layout)
                options.rank = EngineRank(tpRank: t, stage: p, pp: layout.pp, layersPerStage: layout.layersPerStage)
            }
            let r = try CheckpointLoader.loadSplit(checkpointURL, tp: layout.tp, divisibleBy: 1, options: options)
            r.problems.forEach { log("warning: \(checkpoint): \($0)") }
            let shards = r.shards!
            if MPIRuntime.isActive {   // the hash reads the model a layer at a time: this process holds only its shard
                let engine = try DistributedEngine(config: r.checkpoint.config, rankTensors: shards[0], layout: layout, dtype: dtype, world: try MPICollective.world())
                let (url, o) = (checkpointURL, options)
                return LoadedModel(engine: engine, tokenizer: tok, checkpoint: r.checkpoint) { try CheckpointLoader.weightsHash(url, options: o) }
            }
            let config = r.checkpoint.config
            let hash = wantHash ? try CanonicalCheckpoint.weightsHash(config: config, rankTensors: shards) : nil
            let engine = try ShardedEngine(config: config, rankTensors: shards, layout: layout, dtype: dtype)
            return LoadedModel(engine: engine, tokenizer: tok, checkpoint: r.checkpoint.withoutTensors) { try hash ?? notComputed() }
        }
        var ckpt = try loadCheckpoint(vocabSize: tok.map { $0.vocabSize })
        let hash = wantHash ? ckpt.weightsHash : nil
        let engine: CausalLM
        if MPIRuntime.isActive { engine = try DistributedEngine(ckpt, layout: layout, dtype: dtype, world: try MPICollective.world()) }
        else if layout.tp == 1 && layout.pp == 1 {
            // the engine takes the tensors over and lets each go once packed: no second whole copy
            try ckpt.validate()
            let tensors = ckpt.tensors
            ckpt = ckpt.withoutTensors
            engine = DecoderModel(weights: try DecoderWeights(config: ckpt.config, rankTensors: consume tensors,
                                                              shard: .single(layers: ckpt.config.numLayers), dtype: dtype))
        }
        else { engine = try ShardedEngine(ckpt, layout: layout, dtype: dtype) }
        return LoadedModel(engine: engine, tokenizer: tok, checkpoint: ckpt.withoutTensors) { try hash ?? notComputed() }
    }
}

private func notComputed() throws -> String { throw CLIError("the weights hash was not asked for at load (load(weightsHash: true))") }

extension CanonicalCheckpoint {
    /// The config, format and source dtype, without the tensors (they may then be freed).
    var withoutTensors: CanonicalCheckpoint { CanonicalCheckpoint(config: config, tensors: [:], format: format, sourceDType: sourceDType) }
}

/// What `CheckpointOptions.load` returns. `checkpoint` holds the config (and format); its tensors are
/// empty when the weights were loaded straight into the ranks' pieces.
struct LoadedModel {
    let engine: CausalLM
    let tokenizer: Tokenizer?
    let checkpoint: CanonicalCheckpoint
    /// The weights' fingerprint, the same whichever way they were loaded (`CanonicalCheckpoint.weightsHash`).
    let weightsHash: () throws -> String
}

func tokenizerAt(_ url: URL, required: Bool) throws -> Tokenizer? {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else {
        if required { throw CLIError("tokenizer not found: \(url.path)") }
        return nil
    }
    if !isDir.boolValue {
        if url.pathExtension == "json" { return try GPT2Tokenizer(tokenizerJSON: url.path) }
        if url.pathExtension == "bin" { return try Llama2cTokenizer(path: url.path) }
        throw CLIError("unknown tokenizer file format: \(url.path) (expected tokenizer.json, or a llama2.c tokenizer .bin, or a folder with vocab.json + merges.txt)")
    }
    let json = url.appendingPathComponent("tokenizer.json")
    if fm.fileExists(atPath: json.path) { return try GPT2Tokenizer(tokenizerJSON: json.path) }
    for (v, m) in [("vocab.json", "merges.txt"), ("gpt2-vocab.json", "gpt2-merges.txt")] {
        let vu = url.appendingPathComponent(v), mu = url.appendingPathComponent(m)
        if fm.fileExists(atPath: vu.path) && fm.fileExists(atPath: mu.path) { return try GPT2Tokenizer(vocabFile: vu.path, mergesFile: mu.path) }
    }
    let bin = url.appendingPathComponent("tokenizer.bin")
    if fm.fileExists(atPath: bin.path) { return try Llama2cTokenizer(path: bin.path) }
    if required { throw CLIError("no tokenizer in \(url.path): looked for tokenizer.json, vocab.json + merges.txt, tokenizer.bin") }
    return nil
}

/// Any checkpoint Turing reads: a Turing save, a llama2.c file, or what CheckpointLoader detects.
func loadAnyCheckpoint(_ path: String, vocabSize: Int?, megatronArgs: [String] = []) throws -> CanonicalCheckpoint {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("checkpoint not found: \(path)") }
    let url = URL(fileURLWithPath: path)
    if !isDir.boolValue { return try Llama2cAdapter.load(url) }
    if TuringFormat.resolve(url) != nil {
        let ck = try TuringFormat.load(url).checkpoint
        try WeightChecks.refuseNonFinite(ck.tensors, file: path)
        return ck
    }
    return try CheckpointLoader.load(url, options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArgs)),
                                     warn: { log("warning: \(path): \($0)") })
}

/// Tokens that end a generated text: end-of-text, and for llama2.c models BOS too (run.c stops on it).
func generationStopTokens(_ tok: Tokenizer) -> Set<Int> {
    Set([tok.eosToken, tok is Llama2cTokenizer ? tok.bosToken : nil].compactMap { $0 })
}
