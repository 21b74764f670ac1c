// CheckpointLoader: one entry point. Detects the format of a directory (HF folder, Megatron-LM
// legacy, Megatron-DeepSpeed pipeline), loads it to a `CanonicalCheckpoint`, and `inspect`s it:
// format, iteration, TP, PP, architecture, parameter count, dtypes, per-shard file sizes and every
// problem found (a failed load is reported as a problem, not thrown).
// Does not own: any format's details (the adapters).

import Foundation
import TensorCore
import Model

public enum CheckpointFormat: String, Sendable { case hf, megatronLegacy = "megatron-legacy", deepspeed, torchDist = "megatron-core-torch-dist" }

public struct CheckpointInspection: CustomStringConvertible {
    public var path: String
    public var format: CheckpointFormat?
    public var iteration: Int?
    public var tensorParallel: Int?
    public var pipelineParallel: Int?
    public var checkpointVersion: Double?
    public var config: ModelConfig?
    public var parameterCount: Int?
    public var dtypes: [StorageDType]
    public var shardFiles: [(path: String, bytes: Int)]
    public var problems: [String]
    /// The saved training args as (field, readable value), in saved order (Megatron saves).
    public var args: [(String, String)] = []
    /// List every arg in `description` (else only their count).
    public var showArgs = false
    /// What was read past on purpose (LoadReport.notes).
    public var notes: [String] = []

    public var architecture: String {
        guard let c = config else { return "unknown" }
        return "\(c.numLayers) layers, hidden \(c.hiddenSize), \(c.numHeads) heads (\(c.numKVHeads) kv, head dim \(c.headDim)), " +
            "ffn \(c.ffnSize), vocab \(c.vocabSize), \(c.norm.rawValue), \(c.activation.rawValue), \(c.positions.rawValue) positions, " +
            (c.tiedEmbeddings ? "tied head" : "untied head") + (c.linearBias ? ", biases" : ", no biases")
    }

    public var description: String {
        var s = "\(path)\n  format: \(format?.rawValue ?? "unknown")"
        if let i = iteration { s += "\n  iteration: \(i)" }
        if let t = tensorParallel, let p = pipelineParallel { s += "\n  parallelism: TP \(t) × PP \(p)" }
        if let v = checkpointVersion { s += "\n  checkpoint_version: \(v)" }
        s += "\n  architecture: \(architecture)"
        if let n = parameterCount { s += "\n  parameters: \(n)" }
        s += "\n  dtypes: \(dtypes.map(\.rawValue).joined(separator: ", "))"
        s += "\n  files: \(shardFiles.count), \(shardFiles.reduce(0) { $0 + $1.bytes }) bytes"
        for f in shardFiles { s += "\n    \(f.bytes)\t\(f.path)" }
        if !args.isEmpty {
            s += "\n  args: \(args.count) fields" + (showArgs ? "" : " (--args lists them)")
            if showArgs { for (k, v) in args { s += "\n    \(k): \(v)" } }
        }
        for n in notes { s += "\n  note: \(n)" }
        s += problems.isEmpty ? "\n  problems: none" : "\n  problems:\n" + problems.map { "    - " + $0 }.joined(separator: "\n")
        return s
    }
}

public enum CheckpointLoader {
    public static func detect(_ url: URL) throws -> CheckpointFormat {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw CheckpointError.io(file: url.path, "no such file or directory")
        }
        guard isDir.boolValue else { throw CheckpointError.unknownFormat(path: url.path, "expected a checkpoint directory") }
        if HFAdapter.isHFFolder(url) { return .hf }
        if DeepSpeedAdapter.isDeepSpeedFolder(url) { return .deepspeed }
        if MegatronLegacyAdapter.isMegatronFolder(url) { return .megatronLegacy }
        if TorchDistAdapter.isTorchDistFolder(url) { return .torchDist }
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("latest_checkpointed_iteration.txt").path) {
            // Tracker present but no rank directories: let the Megatron adapter say what is missing.
            return .megatronLegacy
        }
        throw CheckpointError.unknownFormat(path: url.path,
            "no config.json + model.safetensors or pytorch_model.bin, no 'latest' + layer_*-model_*-model_states.pt, no latest_checkpointed_iteration.txt + mp_rank_* directories or torch_dist files")
    }

    public static func loadReport(_ url: URL, options: LoadOptions = LoadOptions()) throws -> LoadReport {
        switch try detect(url) {
        case .hf:
            // visited a tensor at a time (layer order, not name order: the hash below still loads HF whole)
            let ck = try HFAdapter.load(url, options.target == .canonical ? options.visit.map { HFAdapter.Visitor(begin: options.visitConfig, visit: $0) } : nil)
            let files = HFAdapter.weightFileURLs(url)
            return LoadReport(checkpoint: ck, format: "hf", iteration: nil, tensorParallel: 1, pipelineParallel: 1,
                              checkpointVersion: nil, files: files, dtypes: [ck.sourceDType], problems: [])
        case .megatronLegacy: return try MegatronLegacyAdapter.load(url, options: options)
        case .deepspeed: return try DeepSpeedAdapter.load(url, options: options)
        case .torchDist: return try TorchDistAdapter.load(url, options: options)
        }
    }

    /// The canonical checkpoint; the load's non-fatal problems go to `warn` (a command prints them).
    public static func load(_ url: URL, options: LoadOptions = LoadOptions(), warn: ((String) -> Void)? = nil) throws -> CanonicalCheckpoint {
        var o = options; o.target = .canonical
        let r = try loadReport(url, options: o)
        r.problems.forEach { warn?($0) }
        let ck = r.checkpoint
        if o.visit == nil { try WeightChecks.refuseNonFinite(ck.tensors, file: url.path) }
        return ck
    }

    /// Load straight into the TP rank tensors of `layout` (`report.shards`, vocabulary padded by
    /// `layout.vocab`), as `load(url).split(layout)` would cut them; Megatron and DeepSpeed saves are
    /// written into the pieces directly (no canonical copy), other formats are split after loading.
    /// `report.checkpoint.tensors` is empty. With `options.rank` (a world rank of `layout`),
    /// `report.shards` holds that rank's tensors only (Megatron and DeepSpeed saves: only those are read).
    public static func loadSplit(_ url: URL, layout: ParallelLayout, options: LoadOptions = LoadOptions()) throws -> LoadReport {
        var o = options; o.target = .split(layout)
        if let g = options.rank, g < 0 || g >= layout.worldSize {
            throw CheckpointError.badConfig(file: url.path, "rank \(g) is outside \(layout) (\(layout.worldSize) ranks)")
        }
        var r = try loadReport(url, options: o)
        if r.shards == nil {
            let all = try r.checkpoint.split(layout)
            r.shards = options.rank.map { [all[layout.coordinates(ofRank: $0).tpRank]] } ?? all
            r.checkpoint.tensors = [:]
        }
        for (i, s) in (r.shards ?? []).enumerated() {
            let rank = "TP rank \(options.rank.map { layout.coordinates(ofRank: $0).tpRank } ?? i)"
            try WeightChecks.refuseNonFinite(s, file: url.path, piece: (r.shards!.count > 1 || options.rank != nil) ? " (\(rank) piece)" : "")
        }
        return r
    }

    /// `CanonicalCheckpoint.weightsHash` of the checkpoint at `url`, reading it a layer at a time
    /// (`LoadOptions.visit`; Megatron-LM, DeepSpeed and torch_dist saves, other formats are loaded
    /// whole): a process that holds only its own shard can still fingerprint the whole model.
    public static func weightsHash(_ url: URL, options: LoadOptions = LoadOptions()) throws -> String {
        var o = options; o.target = .canonical; o.rank = nil
        guard try detect(url) != .hf else { return try load(url, options: o).weightsHash }
        final class Box: @unchecked Sendable { var hasher = WeightsHasher() }
        let box = Box()
        o.visit = { name, tensor in box.hasher.add(name, tensor) }
        _ = try loadReport(url, options: o)
        return box.hasher.value
    }

    /// Everything known about a checkpoint; never throws — failures become problems.
    public static func inspect(_ url: URL, options: LoadOptions = LoadOptions()) -> CheckpointInspection {
        var ins = CheckpointInspection(path: url.path, dtypes: [], shardFiles: [], problems: [])
        ins.shardFiles = allFiles(url).map { ($0.path, (try? FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int) ?? 0) }
        do { ins.format = try detect(url) } catch { ins.problems.append("\(error)"); return ins }
        do {
            var o = options; o.target = .canonical
            let r = try loadReport(url, options: o)
            ins.iteration = r.iteration; ins.tensorParallel = r.tensorParallel; ins.pipelineParallel = r.pipelineParallel
            ins.checkpointVersion = r.checkpointVersion; ins.config = r.checkpoint.config
            ins.parameterCount = r.checkpoint.tensors.values.reduce(0) { $0 + $1.count }
            ins.dtypes = r.dtypes.sorted { $0.rawValue < $1.rawValue }
            ins.problems += r.problems
            ins.notes = r.notes
            ins.args = r.args?.fields ?? []
            do { try r.checkpoint.validate() } catch { ins.problems.append("\(error)") }
            for t in r.checkpoint.tensors.sorted(by: { $0.key < $1.key }) where t.value.data.contains(where: { !$0.isFinite }) {
                ins.problems.append("tensor '\(t.key)' holds NaN or infinite values")
            }
        } catch {
            ins.problems.append("\(error)")
        }
        return ins
    }

    static func allFiles(_ url: URL) -> [URL] {
        guard let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        var out: [URL] = []
        for case let u as URL in e where (try? u.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { out.append(u) }
        return out.sorted { $0.path < $1.path }
    }
}
