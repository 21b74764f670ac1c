// Opening a model: "this checkpoint (any format), its tokenizer, at this layout and dtype" as one
// library call (`ModelSource.open`), which every command that runs a model is a thin layer over.
// Errors name the path and what was looked for.

import Foundation
import Checkpoints
import Collectives
import Engine
import Model
import TensorCore
import Tokenizers

/// Where a model comes from: the checkpoint path, and the tokenizer when it is not beside it.
public struct ModelSource: Sendable {
    /// An HF folder, a Megatron / DeepSpeed / torch_dist save, a Turing save, or a llama2.c `.bin` file.
    public var checkpoint: String
    /// A tokenizer folder or file (default: found beside the checkpoint).
    public var tokenizer: String?
    /// GPT-2 vocab.json and merges.txt (Megatron's --vocab-file / --merge-file), given together.
    public var vocabFile: String?
    public var mergeFile: String?
    /// Megatron args as key=value, over the saved args.
    public var megatronArgs: [String]
    public init(checkpoint: String, tokenizer: String? = nil, vocabFile: String? = nil, mergeFile: String? = nil,
                megatronArgs: [String] = []) {
        self.checkpoint = checkpoint; self.tokenizer = tokenizer; self.vocabFile = vocabFile; self.mergeFile = mergeFile
        self.megatronArgs = megatronArgs
    }

    var checkpointURL: URL { URL(fileURLWithPath: checkpoint) }

    public func loadTokenizer(megatronArgs: MegatronTokenizerArgs? = nil) throws -> Tokenizer? {
        try ModelSource.findTokenizer(tokenizer: tokenizer, vocabFile: vocabFile, mergeFile: mergeFile, besideCheckpoint: checkpoint,
                                      megatronArgs: megatronArgs, argOverrides: self.megatronArgs)
    }

    /// The tokenizer named (a folder or file, or a GPT-2 vocab + merges pair), else the one `TokenizerLoader`
    /// finds beside `checkpoint` (from the saved Megatron args when given, else the files in its folder or
    /// next to a llama2.c file, else the args saved in a Megatron checkpoint); nil: none.
    public static func findTokenizer(tokenizer: String?, vocabFile: String?, mergeFile: String?, besideCheckpoint checkpoint: String?,
                                     megatronArgs: MegatronTokenizerArgs? = nil, argOverrides: [String] = []) throws -> Tokenizer? {
        if let v = vocabFile, let m = mergeFile {
            return try GPT2Tokenizer(vocabFile: v, mergesFile: m)
        }
        if (vocabFile == nil) != (mergeFile == nil) { throw OpenError("--vocab-file and --merge-file go together") }
        if let t = tokenizer, checkpoint == nil { return try TokenizerLoader.load(path: t).tokenizer }
        guard let checkpoint, tokenizer != nil || FileManager.default.fileExists(atPath: checkpoint) else { return nil }
        // A Megatron-style save names its tokenizer in its args, which win over tokenizer files beside it; the args
        // are read from one small pickle here (SavedTokenizerArgs). A file the args name that is found nowhere
        // leaves the folder's own files to decide, with a warning.
        if megatronArgs == nil, tokenizer == nil, TuringFormat.resolve(URL(fileURLWithPath: checkpoint)) == nil,
           let f = try? CheckpointLoader.detect(URL(fileURLWithPath: checkpoint)), f != .hf,
           let saved = SavedTokenizerArgs.read(checkpoint, overrides: try MegatronArgs.parseOverrides(argOverrides)) {
            do {
                return try TokenizerLoader.find(besideCheckpoint: checkpoint, megatronArgs: saved)?.tokenizer
            } catch TokenizerError.fileNotFound(let what) {
                guard let t = try TokenizerLoader.find(besideCheckpoint: checkpoint, megatronArgs: nil) else { throw TokenizerError.fileNotFound(what) }
                EngineWarnings.handler("\(checkpoint): the saved args' tokenizer file is missing (\(what)); using \(t.description)")
                return t.tokenizer
            }
        }
        if let t = try TokenizerLoader.find(besideCheckpoint: checkpoint, megatronArgs: megatronArgs, tokenizerPath: tokenizer) { return t.tokenizer }
        // A Megatron save without tokenizer files: its saved args name the tokenizer. (The checkpoint loader does
        // not expose the args alone, so this reads the checkpoint once more, only in this case, and not under
        // mpirun, where every process would read all of it.)
        let url = URL(fileURLWithPath: checkpoint)
        guard megatronArgs == nil, tokenizer == nil, !MPIRuntime.isActive, let f = try? CheckpointLoader.detect(url), f != .hf else { return nil }
        let ins = CheckpointLoader.inspect(url, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(argOverrides)))
        guard !ins.args.isEmpty else { return nil }
        return try TokenizerLoader.find(besideCheckpoint: checkpoint, megatronArgs: MegatronTokenizerArgs(fields: ins.args))?.tokenizer
    }

    public func loadCheckpoint(vocabSize: Int?) throws -> CanonicalCheckpoint { try loadAnyCheckpoint(checkpoint, vocabSize: vocabSize, megatronArgs: megatronArgs) }

    /// Checkpoint, tokenizer (when one is found) and the engine at `layout`: under mpirun this
    /// process's rank of a `DistributedEngine` (the process count must be TP x PP). A Megatron,
    /// DeepSpeed or torch_dist save is loaded straight into the ranks' pieces (`CheckpointLoader.loadSplit`)
    /// in-process at TP x PP > 1, and under mpirun each process reads only its own shard; the returned
    /// checkpoint then holds the config only, and no canonical copy of the weights is made.
    /// The engine packs its own copy of the weights (f32 or bf16); the loaded tensors are dropped once it
    /// is built, so `checkpoint` holds the config and format only. `weightsHash` is computed from the
    /// loaded tensors before they go (in-process), or re-read a layer at a time (mpirun).
    /// `microBatches`: the engine's most micro-batches per forward (nil: PP).
    public func open(layout: ParallelLayout = ParallelLayout(), microBatches: Int? = nil, dtype: ComputeDType = .float32, threads: Int? = nil, needTokenizer: Bool = true, weightsHash wantHash: Bool = false) throws -> LoadedModel {
        if MPIRuntime.isActive { try DistributedEngine.checkProcessCount(layout, worldSize: MPIRuntime.worldSize) }
        if let threads { Compute.setThreads(threads) }
        defer { releaseFreedMemory() }   // the loaded tensors, once the engine holds its packed copy
        guard FileManager.default.fileExists(atPath: checkpoint) else { throw OpenError("checkpoint not found: \(checkpoint)") }
        let tok = try loadTokenizer()
        if needTokenizer && tok == nil {
            throw OpenError("no tokenizer found for \(checkpoint): pass --tokenizer DIR or --vocab-file F --merge-file F")
        }
        // (detect recognises only the checkpoint formats: a Turing save or a llama2.c file is loaded whole below)
        if MPIRuntime.isActive || layout.tp * layout.pp > 1, let format = try? CheckpointLoader.detect(checkpointURL), format != .hf {
            var options = LoadOptions(vocabSize: tok.map { $0.vocabSize }, argOverrides: try MegatronArgs.parseOverrides(megatronArgs))
            if MPIRuntime.isActive { options.rank = MPIRuntime.worldRank }   // this process reads its own shard only
            let r = try CheckpointLoader.loadSplit(checkpointURL, layout: layout, options: options)
            r.problems.forEach { EngineWarnings.handler("\(checkpoint): \($0)") }
            let shards = r.shards!
            if MPIRuntime.isActive {   // the hash reads the model a layer at a time: this process holds only its shard
                let engine = try DistributedEngine(config: r.checkpoint.config, rankTensors: shards[0], layout: layout, microBatches: microBatches,
                                               dtype: dtype, world: try MPICollective.world())
                let (url, o) = (checkpointURL, options)
                return LoadedModel(engine: engine, tokenizer: tok, checkpoint: r.checkpoint) { try CheckpointLoader.weightsHash(url, options: o) }
            }
            let config = r.checkpoint.config
            let hash = wantHash ? try CanonicalCheckpoint.weightsHash(config: config, rankTensors: shards) : nil
            let engine = try ShardedEngine(config: config, rankTensors: shards, layout: layout, microBatches: microBatches, dtype: dtype)
            return LoadedModel(engine: engine, tokenizer: tok, checkpoint: r.checkpoint.withoutTensors) { try hash ?? notComputed() }
        }
        if !MPIRuntime.isActive && layout.tp == 1 && layout.pp == 1, TuringFormat.resolve(checkpointURL) == nil,
           let format = try? CheckpointLoader.detect(checkpointURL), !(wantHash && format == .hf) {
            return try openStreamed(dtype: dtype, vocabSize: tok.map { $0.vocabSize }, tokenizer: tok, hash: wantHash)
        }
        var ckpt = try loadCheckpoint(vocabSize: tok.map { $0.vocabSize })
        let hash = wantHash ? ckpt.weightsHash : nil
        let engine: CausalLM
        if MPIRuntime.isActive { engine = try DistributedEngine(ckpt, layout: layout, microBatches: microBatches, dtype: dtype, world: try MPICollective.world()) }
        else if layout.tp == 1 && layout.pp == 1 {
            // the engine takes the tensors over and lets each go once packed: no second whole copy
            try ckpt.validate()
            let tensors = ckpt.tensors
            ckpt = ckpt.withoutTensors
            engine = DecoderModel(weights: try DecoderWeights(config: ckpt.config, rankTensors: consume tensors,
                                                              shard: .single(layers: ckpt.config.numLayers), dtype: dtype))
        }
        else { engine = try ShardedEngine(ckpt, layout: layout, microBatches: microBatches, dtype: dtype) }
        return LoadedModel(engine: engine, tokenizer: tok, checkpoint: ckpt.withoutTensors) { try hash ?? notComputed() }
    }
}

extension ModelSource {
    /// TP 1 x PP 1 in this process from a checkpoint directory, streamed (`LoadOptions.visit`): Megatron,
    /// DeepSpeed and torch_dist saves merged a layer at a time, HF folders decoded a tensor at a time, into
    /// a `DecoderWeightsBuilder` that packs each matrix (narrowed to bf16 with `.bfloat16`) as soon as its
    /// tensors have arrived: the peak is near the packed weights plus about one layer in f32, never the
    /// whole model in f32. Same weights, bit for bit, as loading whole. The hash (Megatron-family saves
    /// only: they are visited in name order) is fed while visiting.
    func openStreamed(dtype: ComputeDType, vocabSize: Int?, tokenizer tok: Tokenizer?, hash wantHash: Bool) throws -> LoadedModel {
        final class Sink: @unchecked Sendable { var builder: DecoderWeightsBuilder?; var hasher = WeightsHasher() }
        let sink = Sink(), path = checkpoint
        var options = LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArgs))
        options.visitConfig = { sink.builder = try DecoderWeightsBuilder(config: $0, dtype: dtype) }
        options.visit = { name, t in
            try WeightChecks.refuseNonFinite([name: t], file: path)
            guard let b = sink.builder else { throw OpenError("\(path): tensor '\(name)' arrived before the model's config") }
            if wantHash { sink.hasher.add(name, t) }
            try b.add(name, t)
            if let report = LoadProgress.handler { let p = b.progress; report(p.placed, p.of) }
        }
        let r = try CheckpointLoader.loadReport(checkpointURL, options: options)
        r.problems.forEach { EngineWarnings.handler("\(checkpoint): \($0)") }
        guard let b = sink.builder else { throw OpenError("\(checkpoint): no tensors were visited") }
        let weights = try b.finish()
        sink.builder = nil
        let hash = wantHash ? sink.hasher.value : nil
        return LoadedModel(engine: DecoderModel(weights: weights), tokenizer: tok, checkpoint: r.checkpoint.withoutTensors) { try hash ?? notComputed() }
    }
}

/// Progress of a streamed load (a 7B model takes tens of seconds): called after each tensor is placed, with
/// (tensors placed, tensors the model takes). Nil: silent. Set by the command line, read on the loading thread.
public enum LoadProgress {
    nonisolated(unsafe) public static var handler: ((_ placed: Int, _ of: Int) -> Void)? = nil
}

/// A model could not be opened: the message names the path and what was looked for.
public struct OpenError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

private func notComputed() throws -> String { throw OpenError("the weights hash was not asked for at load (open(weightsHash: true))") }

extension CanonicalCheckpoint {
    /// The config, format and source dtype, without the tensors (they may then be freed).
    public var withoutTensors: CanonicalCheckpoint { CanonicalCheckpoint(config: config, tensors: [:], format: format, sourceDType: sourceDType) }
}

/// What `ModelSource.open` returns. `checkpoint` holds the config (and format); its tensors are
/// empty when the weights were loaded straight into the ranks' pieces.
public struct LoadedModel {
    public let engine: CausalLM
    public let tokenizer: Tokenizer?
    public let checkpoint: CanonicalCheckpoint
    /// The weights' fingerprint, the same whichever way they were loaded (`CanonicalCheckpoint.weightsHash`).
    public let weightsHash: () throws -> String
}

/// Any checkpoint Turing reads: a Turing save, a llama2.c file, or what CheckpointLoader detects.
public func loadAnyCheckpoint(_ path: String, vocabSize: Int?, megatronArgs: [String] = []) throws -> CanonicalCheckpoint {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw OpenError("checkpoint not found: \(path)") }
    let url = URL(fileURLWithPath: path)
    if !isDir.boolValue { return try Llama2cAdapter.load(url) }
    if TuringFormat.resolve(url) != nil {
        let ck = try TuringFormat.load(url).checkpoint
        try WeightChecks.refuseNonFinite(ck.tensors, file: path)
        return ck
    }
    return try CheckpointLoader.load(url, options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArgs)),
                                     warn: { EngineWarnings.handler("\(path): \($0)") })
}

/// Tokens that end a generated text: end-of-text, and for llama2.c models BOS too (run.c stops on it).
public func generationStopTokens(_ tok: Tokenizer) -> Set<Int> {
    Set([tok.eosToken, tok is Llama2cTokenizer ? tok.bosToken : nil].compactMap { $0 })
}
