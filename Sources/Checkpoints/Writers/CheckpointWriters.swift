// CheckpointWriters: a `CanonicalCheckpoint` written as a Megatron-LM legacy save, a Megatron-DeepSpeed
// pipeline save, or a Hugging Face folder, at any TP x PP (`WriteOptions.layout`; HF: TP 1 x PP 1).
//
// Contract:
//   * Megatron legacy: `latest_checkpointed_iteration.txt` ("release" or the iteration), `release/` or
//     `iter_%07d/`, `mp_rank_TT` (PP 1) or `mp_rank_TT_PPP`, each `model_optim_rng.pt` =
//     {args: Namespace, checkpoint_version: 3.0, iteration, model: {language_model: {embedding (stage 0),
//     encoder (LOCAL layer numbers; final_layernorm on the last stage), output_layer (untied, last stage)},
//     word_embeddings_for_head (tied, last stage, PP > 1)}}. Vocabulary zero-padded as the layout's
//     `VocabPadding` says (by default a multiple of 128·TP); fused QKV rows per rank [ng, np/ng + 2, hn]
//     (MHA: [np, 3, hn]); SwiGLU fc1 per rank [W; V]; column/row-parallel splits as docs/formats.md#tp-splits (the same as `split(_:)`).
//   * DeepSpeed: `latest` -> `global_stepN/`, current numbering: layer_01 embedding, layer_02.. the
//     layers, then the final norm, then (untied) the head `lm_head.weight`; one file per TP rank;
//     `mp_rank_NN_model_states.pt` (NN = stage·TP + tp) with args, checkpoint_version, iteration, module None.
//   * HF: config.json + model.safetensors, GPT-2 (Conv1D [in, out], fused c_attn) or Llama.
// Outputs are built in a temporary directory beside `output` and renamed into place at the end.
// The source is any `TensorSource` (a `CanonicalCheckpoint`, or `RandomTensorSource` for a model never
// held whole): each shard tensor is made from it (and cut) lazily while its file is written, so at most
// a few canonical tensors are held at a time.

import Foundation
import TensorCore
import Model

public enum ConvertTarget: String, CaseIterable, Sendable { case megatron, deepspeed, hf }

public struct WriteOptions: Sendable {
    /// The save's TP x PP (DP 1: a save holds one replica; stages split evenly, as Megatron's args
    /// record no other split) and its vocabulary padding (`make_vocab_size_divisible_by` in the args).
    public var layout: ParallelLayout
    public var dtype: StorageDType
    /// nil writes a `release` checkpoint (DeepSpeed: global_step0).
    public var iteration: Int?
    /// Megatron-LM saves: the optimizer and scheduler state to write beside the model (fine-tuning).
    public var training: MegatronTrainingState?
    public init(layout: ParallelLayout = ParallelLayout(vocab: .megatronDefault), dtype: StorageDType = .float32, iteration: Int? = nil,
                training: MegatronTrainingState? = nil) {
        self.layout = layout; self.dtype = dtype; self.iteration = iteration; self.training = training
    }
}

public enum CheckpointWriter {
    /// Write `ck` to `output` as `target`. `output` must not exist or be an empty directory, unless
    /// `replace`: then an existing output is swapped out only after the new one is complete.
    public static func write(_ ck: CanonicalCheckpoint, to output: URL, target: ConvertTarget, options o: WriteOptions,
                             replace: Bool = false) throws {
        try ck.validate()
        try write(source: ck, to: output, target: target, options: o, replace: replace)
    }

    /// Write the model `source` makes, tensor by tensor (each made when its file is written, then dropped).
    public static func write(source ck: TensorSource, to output: URL, target: ConvertTarget, options o: WriteOptions,
                             replace: Bool = false) throws {
        try ck.config.validate()
        guard TorchWriter.writableDTypes.contains(o.dtype) else {
            throw CheckpointError.unsupportedDType(file: output.path, tensor: "*", o.dtype.rawValue + " (writable: float32, bfloat16, float16)")
        }
        if let it = o.iteration, it < 1 {
            throw CheckpointError.badConfig(file: output.path, "iteration must be >= 1, found \(it) (Megatron's tracker rejects 0; omit it for a release checkpoint)")
        }
        if target == .hf && (o.layout.tp != 1 || o.layout.pp != 1) {
            throw CheckpointError.badConfig(file: output.path, "HF folders hold one unsharded model; got TP \(o.layout.tp) × PP \(o.layout.pp), expected TP 1 × PP 1")
        }
        if o.layout.dp != 1 || o.layout.layersPerStage != nil {
            throw CheckpointError.badConfig(file: output.path, "a save holds one replica with evenly split stages; got \(o.layout)" +
                                            (o.layout.layersPerStage.map { ", layers per stage \($0)" } ?? "") + ", expected DP 1 and no layers per stage")
        }
        do { try o.layout.check(ck.config) }
        catch { throw CheckpointError.badConfig(file: output.path, "\(error)") }
        try atomicDirectory(output, replace: replace) { tmp in
            switch target {
            case .megatron: try MegatronWriter(ck, o: o).writeLegacy(tmp)
            case .deepspeed: try MegatronWriter(ck, o: o).writeDeepSpeed(tmp)
            case .hf: try HFWriter.write(ck, to: tmp, dtype: o.dtype)
            }
        }
    }

    /// Build the directory in `.<name>.tmp-PID` beside `output`, then rename it into place.
    static func atomicDirectory(_ output: URL, replace: Bool = false, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = output.deletingLastPathComponent()
        let tmp = parent.appendingPathComponent(".\(output.lastPathComponent).tmp-\(getpid())")
        try? fm.removeItem(at: tmp)
        do { try fm.createDirectory(at: tmp, withIntermediateDirectories: true) }
        catch { throw CheckpointError.io(file: tmp.path, "cannot create directory: \(error.localizedDescription)") }
        do {
            try body(tmp)
            var old: URL? = nil
            if fm.fileExists(atPath: output.path) {
                let left = (try? fm.contentsOfDirectory(atPath: output.path)) ?? ["?"]
                guard left.isEmpty || replace else { throw CheckpointError.io(file: output.path, "output exists and is not empty") }
                let aside = parent.appendingPathComponent(".\(output.lastPathComponent).old-\(getpid())")
                guard rename(output.path, aside.path) == 0 else { throw CheckpointError.io(file: output.path, "cannot move the old output aside (errno \(errno))") }
                old = aside
            }
            guard rename(tmp.path, output.path) == 0 else {
                let e = errno
                if let old { _ = rename(old.path, output.path) }
                throw CheckpointError.io(file: output.path, "rename from \(tmp.path) failed (errno \(e))")
            }
            if let old { try? fm.removeItem(at: old) }
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }
}

/// Per-rank shards cut from canonical tensors, and the Megatron / DeepSpeed layouts.
struct MegatronWriter {
    let ck: TensorSource
    let o: WriteOptions
    let shapes: [String: [Int]]
    var c: ModelConfig { ck.config }
    var paddedVocab: Int { o.layout.vocab.paddedVocab(c.vocabSize, tp: o.layout.tp) }

    init(_ source: TensorSource, o: WriteOptions) {
        ck = source; self.o = o
        shapes = Dictionary(uniqueKeysWithValues: CanonicalSchema.shapes(for: source.config))
    }
    /// The canonical shape of `name` (the schema's: the tensor itself is made only when written).
    func shape(_ name: String) throws -> [Int] {
        guard let s = shapes[name] else { throw CheckpointError.missingTensor(file: "model to write", tensor: name) }
        return s
    }
    func t(_ name: String) throws -> Tensor { try ck.tensor(name) }
    func payload(_ shape: [Int], _ make: @escaping () throws -> Tensor) -> TorchValue {
        .tensor(TensorPayload(shape: shape, dtype: o.dtype, make: make))
    }
    /// Rows [r·n/tp, (r+1)·n/tp) of a canonical tensor (column-parallel).
    func rows(_ name: String, _ r: Int) throws -> TorchValue {
        var s = try shape(name); let n = s[0] / o.layout.tp
        s[0] = n
        return payload(s) { try t(name).rows(r * n, n) }
    }
    /// Columns of rank r (row-parallel weights).
    func cols(_ name: String, _ r: Int) throws -> TorchValue {
        let s = try shape(name); let n = s[1] / o.layout.tp
        return payload([s[0], n]) { try t(name).slice(axis: 1, start: r * n, count: n) }
    }
    func full(_ name: String) throws -> TorchValue { payload(try shape(name)) { try t(name) } }
    /// Vocabulary-parallel rows of rank r, zero-padded to `paddedVocab`.
    func vocab(_ name: String, _ r: Int) throws -> TorchValue {
        _ = try shape(name); let V = c.vocabSize, C = c.hiddenSize, n = paddedVocab / o.layout.tp
        return payload([n, C]) {
            let x = try t(name)
            let start = r * n, real = max(0, min(n, V - start))
            var data = [Float](repeating: 0, count: n * C)
            if real > 0 { data.replaceSubrange(0..<(real * C), with: x.data[(start * C)..<((start + real) * C)]) }
            return Tensor(shape: [n, C], data: data)
        }
    }
    /// Fused QKV of rank r: per local group, its q heads, then k, then v ([ng, np/ng + 2, hn] rows).
    func qkv(_ layer: Int, _ p: String, _ r: Int) throws -> TorchValue {
        let (qn, kn, vn) = ("layers.\(layer).attn.q.\(p)", "layers.\(layer).attn.k.\(p)", "layers.\(layer).attn.v.\(p)")
        let qShape = try shape(qn); _ = try shape(kn); _ = try shape(vn)
        let hn = c.headDim, ngp = c.numKVHeads / o.layout.tp, qpg = c.numHeads / c.numKVHeads
        let inner = qShape.dropFirst().reduce(1, *)
        var shape = qShape; shape[0] = ngp * (qpg + 2) * hn
        return payload(shape) {
            let q = try t(qn), k = try t(kn), v = try t(vn)
            var out = [Float](); out.reserveCapacity(shape.reduce(1, *))
            for gl in 0..<ngp {
                let g = r * ngp + gl
                let qs = g * qpg * hn * inner
                out.append(contentsOf: q.data[qs..<(qs + qpg * hn * inner)])
                out.append(contentsOf: k.data[(g * hn * inner)..<((g + 1) * hn * inner)])
                out.append(contentsOf: v.data[(g * hn * inner)..<((g + 1) * hn * inner)])
            }
            return Tensor(shape: shape, data: out)
        }
    }
    /// SwiGLU fc1 of rank r: [gate rows of r; up rows of r].
    func swigluFC1(_ layer: Int, _ p: String, _ r: Int) throws -> TorchValue {
        let (gn, un) = ("layers.\(layer).mlp.gate.\(p)", "layers.\(layer).mlp.up.\(p)")
        var shape = try shape(gn); _ = try self.shape(un)
        let n = shape[0] / o.layout.tp
        shape[0] = 2 * n
        return payload(shape) { Tensor.concat([try t(gn).rows(r * n, n), try t(un).rows(r * n, n)], axis: 0) }
    }

    /// One layer's tensors for rank r under legacy names (without the `layers.N.` prefix).
    func layer(_ i: Int, _ r: Int) throws -> [(String, TorchValue)] {
        let p = "layers.\(i).", ln = c.norm == .layernorm, b = c.linearBias
        var out: [(String, TorchValue)] = [("input_layernorm.weight", try full(p + "norm1.weight"))]
        if ln { out.append(("input_layernorm.bias", try full(p + "norm1.bias"))) }
        out.append(("self_attention.query_key_value.weight", try qkv(i, "weight", r)))
        if b { out.append(("self_attention.query_key_value.bias", try qkv(i, "bias", r))) }
        out.append(("self_attention.dense.weight", try cols(p + "attn.out.weight", r)))
        if b { out.append(("self_attention.dense.bias", try full(p + "attn.out.bias"))) }
        out.append(("post_attention_layernorm.weight", try full(p + "norm2.weight")))
        if ln { out.append(("post_attention_layernorm.bias", try full(p + "norm2.bias"))) }
        if c.activation == .swiglu {
            out.append(("mlp.dense_h_to_4h.weight", try swigluFC1(i, "weight", r)))
            if b { out.append(("mlp.dense_h_to_4h.bias", try swigluFC1(i, "bias", r))) }
        } else {
            out.append(("mlp.dense_h_to_4h.weight", try rows(p + "mlp.fc1.weight", r)))
            if b { out.append(("mlp.dense_h_to_4h.bias", try rows(p + "mlp.fc1.bias", r))) }
        }
        out.append(("mlp.dense_4h_to_h.weight", try cols(p + "mlp.fc2.weight", r)))
        if b { out.append(("mlp.dense_4h_to_h.bias", try full(p + "mlp.fc2.bias"))) }
        return out
    }
    func embedding(_ r: Int) throws -> [(String, TorchValue)] {
        var e: [(String, TorchValue)] = [("word_embeddings.weight", try vocab("embedding.word.weight", r))]
        if c.positions == .learned { e.append(("position_embeddings.weight", try full("embedding.position.weight"))) }
        return e
    }
    func finalNorm() throws -> [(String, TorchValue)] {
        var f: [(String, TorchValue)] = [("weight", try full("final_norm.weight"))]
        if c.norm == .layernorm { f.append(("bias", try full("final_norm.bias"))) }
        return f
    }

    /// Megatron-LM arguments describing this model and layout.
    var args: TorchValue {
        var a: [(String, TorchValue)] = [
            ("num_layers", .int(c.numLayers)), ("hidden_size", .int(c.hiddenSize)), ("ffn_hidden_size", .int(c.ffnSize)),
            ("num_attention_heads", .int(c.numHeads)), ("kv_channels", .int(c.headDim)),
            ("group_query_attention", .bool(c.numKVHeads != c.numHeads)), ("num_query_groups", .int(c.numKVHeads)),
            ("max_position_embeddings", .int(c.maxPositions)), ("seq_length", .int(c.maxPositions)),
            ("padded_vocab_size", .int(paddedVocab)), ("orig_vocab_size", .int(c.vocabSize)),
            ("make_vocab_size_divisible_by", .int(o.layout.vocab.divisibleBy)),
            ("tensor_model_parallel_size", .int(o.layout.tp)), ("pipeline_model_parallel_size", .int(o.layout.pp)),
            ("virtual_pipeline_model_parallel_size", .none),
            ("layernorm_epsilon", .float(Double(c.normEpsilon))), ("norm_epsilon", .float(Double(c.normEpsilon))),
            ("normalization", .string(c.norm == .rmsnorm ? "RMSNorm" : "LayerNorm")),
            ("openai_gelu", .bool(c.activation == .geluTanh)), ("bias_gelu_fusion", .bool(false)),
            ("swiglu", .bool(c.activation == .swiglu)),
            ("position_embedding_type", .string(c.positions == .rope ? "rope" : "learned_absolute")),
            ("untie_embeddings_and_output_weights", .bool(!c.tiedEmbeddings)),
            ("add_bias_linear", .bool(c.linearBias)), ("add_qkv_bias", .bool(c.linearBias)),
            ("apply_residual_connection_post_layernorm", .bool(false)), ("apply_layernorm_1p", .bool(false)),
            ("params_dtype", .dtype(o.dtype)), ("fp16", .bool(o.dtype == .float16)), ("bf16", .bool(o.dtype == .bfloat16)),
            ("iteration", .int(o.iteration ?? 0)), ("consumed_train_samples", .int((o.iteration ?? 0) * (o.training?.globalBatch ?? 0))),
            ("consumed_valid_samples", .int(0)),
            // Megatron's check_checkpoint_args / load_args_from_checkpoint read these with getattr.
            ("add_position_embedding", .bool(c.positions == .learned)),
            ("use_rotary_position_embeddings", .bool(c.positions == .rope)),
            ("num_layers_per_virtual_pipeline_stage", .none), ("data_parallel_random_init", .bool(false)),
        ]
        if c.norm == .layernorm && c.positions == .learned { a.append(("tokenizer_type", .string("GPT2BPETokenizer"))) }
        if let tr = o.training { a += tr.args }
        if c.positions == .rope { a.append(("rotary_base", c.ropeTheta == c.ropeTheta.rounded() ? .int(Int(c.ropeTheta)) : .float(Double(c.ropeTheta)))); a.append(("rotary_percent", .float(1.0))) }
        return .namespace(a)
    }

    /// Rank r of stage p's `model` dict, as Megatron-LM's legacy GPTModel.state_dict() nests it; its
    /// leaves come in the order of the module's named_parameters().
    func modelTree(stage p: Int, layers range: Range<Int>, rank r: Int) throws -> [(String, TorchValue)] {
        var lm: [(String, TorchValue)] = []
        if p == 0 {   // Megatron's Embedding.state_dict nests {word_embeddings: {weight}, position_embeddings: {weight}}
            let e = try embedding(r).map { ($0.0.components(separatedBy: ".")[0], TorchValue.orderedDict([("weight", $0.1)])) }
            lm.append(("embedding", .orderedDict(e)))
        }
        var enc: [(String, TorchValue)] = []
        for (local, g) in range.enumerated() { enc += try layer(g, r).map { ("layers.\(local)." + $0.0, $0.1) } }
        if p == o.layout.pp - 1 { enc += try finalNorm().map { ("final_layernorm." + $0.0, $0.1) } }
        lm.append(("encoder", .orderedDict(enc)))
        if p == o.layout.pp - 1 && !c.tiedEmbeddings { lm.append(("output_layer", .orderedDict([("weight", try vocab("lm_head.weight", r))]))) }
        var model: [(String, TorchValue)] = [("language_model", .orderedDict(lm))]
        if p == o.layout.pp - 1 && o.layout.pp > 1 && c.tiedEmbeddings {
            model.append(("word_embeddings_for_head", .orderedDict([("weight", try vocab("embedding.word.weight", r))])))
        }
        return model
    }

    /// The tensors of a tree, depth first, with dotted names.
    static func leaves(_ tree: [(String, TorchValue)], prefix: String = "") -> [(String, TensorPayload)] {
        var out: [(String, TensorPayload)] = []
        for (k, v) in tree {
            switch v {
            case .tensor(let t): out.append((prefix + k, t))
            case .dict(let xs), .orderedDict(let xs): out += leaves(xs, prefix: prefix + k + ".")
            default: break
            }
        }
        return out
    }

    func writeLegacy(_ dir: URL) throws {
        let stages = try o.layout.stageLayers(numLayers: c.numLayers)
        let tag = o.iteration.map { String(format: "iter_%07d", $0) } ?? "release"
        try writeText(o.iteration.map(String.init) ?? "release", dir.appendingPathComponent(MegatronLegacyAdapter.tracker))
        for (p, range) in stages.enumerated() {
            for r in 0..<o.layout.tp {
                let model = try modelTree(stage: p, layers: range, rank: r)
                var root: [(String, TorchValue)] = [("args", args), ("checkpoint_version", .float(3.0)),
                                                    ("iteration", .int(o.iteration ?? 0)), ("model", .dict(model))]
                if let tr = o.training {
                    // the same tensors in the same order, holding the Adam moments (always float32)
                    var o32 = o; o32.dtype = .float32; o32.training = nil
                    let mTree = try MegatronWriter(CanonicalCheckpoint(config: c, tensors: tr.expAvg, format: "turing"), o: o32).modelTree(stage: p, layers: range, rank: r)
                    let vTree = try MegatronWriter(CanonicalCheckpoint(config: c, tensors: tr.expAvgSq, format: "turing"), o: o32).modelTree(stage: p, layers: range, rank: r)
                    root.append(("optimizer", tr.optimizerStateDict(params: Self.leaves(model), expAvg: Self.leaves(mTree), expAvgSq: Self.leaves(vTree))))
                    root.append(("opt_param_scheduler", tr.schedulerStateDict))
                }
                let name = o.layout.pp == 1 ? String(format: "mp_rank_%02d", r) : String(format: "mp_rank_%02d_%03d", r, p)
                try TorchWriter.save(.dict(root), to: dir.appendingPathComponent("\(tag)/\(name)/model_optim_rng.pt"))
            }
        }
    }

    func writeDeepSpeed(_ dir: URL) throws {
        let stages = try o.layout.stageLayers(numLayers: c.numLayers)
        let step = o.iteration ?? 0
        let tag = "global_step\(step)"
        try writeText(tag, dir.appendingPathComponent("latest"))
        // Megatron's read_metadata asserts iteration > 0, so step 0 has no tracker (DeepSpeed reads `latest`).
        if step > 0 { try writeText(String(step), dir.appendingPathComponent("latest_checkpointed_iteration.txt")) }
        let td = dir.appendingPathComponent(tag)
        func layerFile(_ xx: Int, _ r: Int) -> URL { td.appendingPathComponent(String(format: "layer_%02d-model_%02d-model_states.pt", xx, r)) }
        for r in 0..<o.layout.tp {
            try TorchWriter.save(.orderedDict(try embedding(r)), to: layerFile(1, r))
            for i in 0..<c.numLayers { try TorchWriter.save(.orderedDict(try layer(i, r)), to: layerFile(2 + i, r)) }
            try TorchWriter.save(.orderedDict(try finalNorm()), to: layerFile(2 + c.numLayers, r))
            if !c.tiedEmbeddings {
                try TorchWriter.save(.orderedDict([("lm_head.weight", try vocab("lm_head.weight", r))]), to: layerFile(3 + c.numLayers, r))
            }
        }
        for p in 0..<stages.count {
            for r in 0..<o.layout.tp {
                let root: TorchValue = .dict([
                    ("module", .none), ("args", args), ("checkpoint_version", .float(3.0)), ("iteration", .int(step)),
                    ("mp_world_size", .int(o.layout.tp * o.layout.pp)), ("dp_world_size", .int(1)),
                    ("checkpoint_parallel_dimensions", .dict([("pp_degree", .int(o.layout.pp)), ("tp_degree", .int(o.layout.tp))])),
                    // What DeepSpeed's engine reads back when resuming (as DeepSpeed 0.19.8 saves them, the fixtures' writer).
                    ("buffer_names", .list([])), ("optimizer", .none), ("lr_scheduler", .none), ("data_sampler", .none),
                    ("random_ltd", .none), ("sparse_tensor_module_names", .list([])), ("skipped_steps", .int(0)),
                    ("global_steps", .int(step)), ("global_samples", .int(0)), ("ds_config", .dict([])), ("ds_version", .string("0.19.8")),
                    ("tokens", .int(0)),
                ])
                try TorchWriter.save(root, to: td.appendingPathComponent(String(format: "mp_rank_%02d_model_states.pt", p * o.layout.tp + r)))
            }
        }
    }
}

func writeText(_ s: String, _ url: URL) throws {
    do {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((s + "\n").utf8).write(to: url)
    } catch { throw CheckpointError.io(file: url.path, "cannot write: \(error.localizedDescription)") }
}

/// Hugging Face folders: GPT-2 (learned positions, LayerNorm, GeLU, biases, MHA) or Llama (RoPE, RMSNorm, SwiGLU, no biases).
enum HFWriter {
    static func write(_ ck: TensorSource, to dir: URL, dtype: StorageDType) throws {
        let c = ck.config
        let shapes = Dictionary(uniqueKeysWithValues: CanonicalSchema.shapes(for: c))
        func shape(_ n: String) throws -> [Int] {
            guard let s = shapes[n] else { throw CheckpointError.missingTensor(file: "model to write", tensor: n) }
            return s
        }
        /// made when written (the source's tensor), then dropped
        func t(_ n: String) -> () throws -> Tensor { { try ck.tensor(n) } }
        func same(_ n: String) throws -> TensorPayload { TensorPayload(shape: try shape(n), dtype: dtype, make: t(n)) }
        func transposed(_ n: String) throws -> TensorPayload {
            let s = try shape(n), x = t(n); return TensorPayload(shape: [s[1], s[0]], dtype: dtype) { try x().transposed() }
        }
        var out: [String: TensorPayload] = [:]   // made lazily while writing: tensors and transposes never all at once
        var cfg: [String: Any] = ["vocab_size": c.vocabSize, "tie_word_embeddings": c.tiedEmbeddings,
                                  "torch_dtype": dtype == .bfloat16 ? "bfloat16" : dtype == .float16 ? "float16" : "float32"]
        if let b = c.bosToken { cfg["bos_token_id"] = b }
        if let e = c.eosToken { cfg["eos_token_id"] = e }
        let gpt2 = c.norm == .layernorm && c.positions == .learned && c.activation != .swiglu && c.linearBias &&
            c.numKVHeads == c.numHeads && c.headDim * c.numHeads == c.hiddenSize
        let llama = c.norm == .rmsnorm && c.positions == .rope && c.activation == .swiglu && !c.linearBias
        if gpt2 {
            cfg.merge(["model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": c.hiddenSize, "n_layer": c.numLayers,
                       "n_head": c.numHeads, "n_positions": c.maxPositions, "n_ctx": c.maxPositions, "n_inner": c.ffnSize,
                       "activation_function": c.activation == .gelu ? "gelu" : "gelu_new",
                       "layer_norm_epsilon": Double(c.normEpsilon), "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                       "scale_attn_weights": true, "use_cache": true]) { $1 }
            out["transformer.wte.weight"] = try same("embedding.word.weight")
            out["transformer.wpe.weight"] = try same("embedding.position.weight")
            for i in 0..<c.numLayers {
                let p = "layers.\(i).", h = "transformer.h.\(i)."
                out[h + "ln_1.weight"] = try same(p + "norm1.weight"); out[h + "ln_1.bias"] = try same(p + "norm1.bias")
                let qkv = ["q", "k", "v"].map { p + "attn.\($0).weight" }, qkvB = ["q", "k", "v"].map { p + "attn.\($0).bias" }
                for n in qkv + qkvB { _ = try shape(n) }
                out[h + "attn.c_attn.weight"] = TensorPayload(shape: [c.hiddenSize, 3 * c.hiddenSize], dtype: dtype) {
                    Tensor.concat(try qkv.map { try ck.tensor($0) }, axis: 0).transposed()
                }
                out[h + "attn.c_attn.bias"] = TensorPayload(shape: [3 * c.hiddenSize], dtype: dtype) { Tensor.concat(try qkvB.map { try ck.tensor($0) }, axis: 0) }
                out[h + "attn.c_proj.weight"] = try transposed(p + "attn.out.weight"); out[h + "attn.c_proj.bias"] = try same(p + "attn.out.bias")
                out[h + "ln_2.weight"] = try same(p + "norm2.weight"); out[h + "ln_2.bias"] = try same(p + "norm2.bias")
                out[h + "mlp.c_fc.weight"] = try transposed(p + "mlp.fc1.weight"); out[h + "mlp.c_fc.bias"] = try same(p + "mlp.fc1.bias")
                out[h + "mlp.c_proj.weight"] = try transposed(p + "mlp.fc2.weight"); out[h + "mlp.c_proj.bias"] = try same(p + "mlp.fc2.bias")
            }
            out["transformer.ln_f.weight"] = try same("final_norm.weight"); out["transformer.ln_f.bias"] = try same("final_norm.bias")
        } else if llama {
            cfg.merge(["model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": c.hiddenSize,
                       "intermediate_size": c.ffnSize, "num_hidden_layers": c.numLayers, "num_attention_heads": c.numHeads,
                       "num_key_value_heads": c.numKVHeads, "head_dim": c.headDim, "max_position_embeddings": c.maxPositions,
                       "rms_norm_eps": Double(c.normEpsilon), "rope_theta": Double(c.ropeTheta), "hidden_act": "silu",
                       "attention_bias": false, "mlp_bias": false, "use_cache": true]) { $1 }
            out["model.embed_tokens.weight"] = try same("embedding.word.weight")
            for i in 0..<c.numLayers {
                let p = "layers.\(i).", h = "model.layers.\(i)."
                for (a, b) in [("norm1.weight", "input_layernorm.weight"), ("attn.q.weight", "self_attn.q_proj.weight"),
                               ("attn.k.weight", "self_attn.k_proj.weight"), ("attn.v.weight", "self_attn.v_proj.weight"),
                               ("attn.out.weight", "self_attn.o_proj.weight"), ("norm2.weight", "post_attention_layernorm.weight"),
                               ("mlp.gate.weight", "mlp.gate_proj.weight"), ("mlp.up.weight", "mlp.up_proj.weight"),
                               ("mlp.fc2.weight", "mlp.down_proj.weight")] { out[h + b] = try same(p + a) }
            }
            out["model.norm.weight"] = try same("final_norm.weight")
        } else {
            throw CheckpointError.badConfig(file: dir.path, "no HF architecture fits this model: GPT-2 needs LayerNorm, learned positions, GeLU, biases and MHA; Llama needs RMSNorm, RoPE, SwiGLU and no biases")
        }
        if !c.tiedEmbeddings { out["lm_head.weight"] = try same("lm_head.weight") }
        let json: Data
        do { json = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]) }
        catch { throw CheckpointError.badConfig(file: dir.path, "cannot encode config.json: \(error)") }
        do { try json.write(to: dir.appendingPathComponent("config.json")) }
        catch { throw CheckpointError.io(file: dir.appendingPathComponent("config.json").path, error.localizedDescription) }
        try SafetensorsWriter.write(payloads: out, to: dir.appendingPathComponent("model.safetensors"), dtype: dtype)
    }
}
