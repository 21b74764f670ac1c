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
}

extension ComputeDType: ExpressibleByArgument {}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension CheckpointOptions {
    var checkpointURL: URL { URL(fileURLWithPath: checkpoint) }

    /// --vocab-file/--merge-file, else TokenizerLoader (--tokenizer, else the checkpoint's folder or neighbours).
    func loadTokenizer(megatronArgs: MegatronTokenizerArgs? = nil) throws -> Tokenizer? {
        if let v = vocabFile, let m = mergeFile {
            return try GPT2Tokenizer(vocabFile: v, mergesFile: m)
        }
        if (vocabFile == nil) != (mergeFile == nil) { throw CLIError("--vocab-file and --merge-file go together") }
        guard tokenizer != nil || FileManager.default.fileExists(atPath: checkpoint) else { return nil }
        if let t = try TokenizerLoader.find(besideCheckpoint: checkpoint, megatronArgs: megatronArgs, tokenizerPath: tokenizer) { return t.tokenizer }
        // A Megatron save without tokenizer files: the saved args name it. (The loader does not expose the args
        // alone, so this reads the checkpoint once more, only in this case.)
        guard megatronArgs == nil, tokenizer == nil, let f = try? CheckpointLoader.detect(checkpointURL), f != .hf else { return nil }
        let ins = CheckpointLoader.inspect(checkpointURL, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(megatronArg)))
        guard !ins.args.isEmpty else { return nil }
        return try TokenizerLoader.find(besideCheckpoint: checkpoint, megatronArgs: MegatronTokenizerArgs(fields: ins.args))?.tokenizer
    }

    func loadCheckpoint(vocabSize: Int?) throws -> CanonicalCheckpoint { try loadAnyCheckpoint(checkpoint, vocabSize: vocabSize, megatronArgs: megatronArg) }

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
    guard required || FileManager.default.fileExists(atPath: url.path) else { return nil }
    do { return try TokenizerLoader.load(path: url.path).tokenizer } catch TokenizerError.fileNotFound(let m) where !required {
        _ = m; return nil
    }
}

/// Any checkpoint Turing reads: a Turing save, a llama2.c file, or what CheckpointLoader detects.
func loadAnyCheckpoint(_ path: String, vocabSize: Int?, megatronArgs: [String] = []) throws -> CanonicalCheckpoint {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("checkpoint not found: \(path)") }
    let url = URL(fileURLWithPath: path)
    if !isDir.boolValue { return try Llama2cAdapter.load(url) }
    if TuringFormat.resolve(url) != nil { return try TuringFormat.load(url).checkpoint }
    return try CheckpointLoader.load(url, options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArgs)))
}

/// Tokens that end a generated text: end-of-text, and for llama2.c models BOS too (run.c stops on it).
func generationStopTokens(_ tok: Tokenizer) -> Set<Int> {
    Set([tok.eosToken, tok is Llama2cTokenizer ? tok.bosToken : nil].compactMap { $0 })
}
