// DeepSpeedAdapter: Megatron-DeepSpeed pipeline checkpoints to a `CanonicalCheckpoint`.
//
// Owns the layout: `latest` names the tag directory; `layer_XX-model_TT-model_states.pt` holds spec
// module XX for TP rank TT (flat state_dict, legacy names without `layers.N.`); XX sorted numerically:
// first = embedding, last = final norm (or, when the last file holds `lm_head.weight`, the untied head
// with the final norm before it), the rest = transformer layers in order — this covers both the
// pre-Jul-2023 numbering (layer_03..) and the current one (layer_02..). Args, checkpoint_version and
// iteration come from `mp_rank_00_model_states.pt`. Without layer files (`--no-pipeline-parallel`),
// `mp_rank_TT_model_states.pt` holds the whole Megatron model under `module`, one file per TP rank.
// Naming and TP merging live in MegatronMerge.

import Foundation
import TensorCore
import Model

public enum DeepSpeedAdapter {
    /// `latest` is data: it must name one folder inside the save (no `/`, not `.` or `..`, no control
    /// characters), never a path out of it.
    static func checkTag(_ tag: String, _ dir: URL) throws {
        guard !tag.isEmpty, tag != ".", tag != "..", !tag.contains("/"), !tag.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw CheckpointError.badConfig(file: dir.appendingPathComponent("latest").path,
                "expected the name of a tag folder inside \(dir.path), found '\(tag.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined())'")
        }
    }

    /// A layer or model-states file, refused when the archive inside names another file: torch.save
    /// names its records after the file it writes (`layer_03-model_01-model_states/...`), so swapped
    /// or renamed files are caught here instead of loading layers in the wrong order.
    static func loadNamed(_ url: URL) throws -> PickleValue {
        let tf: TorchFile
        do { tf = try TorchFile(url: url) } catch CheckpointError.unsupportedLegacyFormat { return try LegacyTorchFile(url: url).root }
        let stem = url.deletingPathExtension().lastPathComponent
        let written = tf.prefix
        let looksLikeName = (written.hasPrefix("layer_") || written.hasPrefix("mp_rank_")) && written.hasSuffix("model_states")
        if looksLikeName && written != stem {
            throw CheckpointError.rankMismatch(files: [url.path],
                "this file holds the records torch.save wrote as \(written).pt (its zip prefix): layer or rank files are swapped or renamed")
        }
        return try tf.root()
    }
    public static func isDeepSpeedFolder(_ dir: URL) -> Bool {
        guard let tag = try? readText(dir.appendingPathComponent("latest")) else { return false }
        if (try? checkTag(tag, dir)) == nil { return true }   // load says what is wrong with it
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(tag).path)) ?? []
        return names.contains { ($0.hasPrefix("layer_") || $0.hasPrefix("mp_rank_")) && $0.hasSuffix("model_states.pt") }
    }

    public static func load(_ dir: URL, options: LoadOptions = LoadOptions()) throws -> LoadReport {
        let fm = FileManager.default
        let tag = try readText(dir.appendingPathComponent("latest"))
        try checkTag(tag, dir)
        let tagDir = dir.appendingPathComponent(tag)
        guard fm.fileExists(atPath: tagDir.path) else {
            throw CheckpointError.missingShard(file: tagDir.path, "'latest' names \(tag)/, which does not exist")
        }
        var layerFiles: [Int: [Int: URL]] = [:]   // XX -> TT -> file
        var mpFiles = 0
        for n in try fm.contentsOfDirectory(atPath: tagDir.path) {
            if n.hasPrefix("mp_rank_") && n.hasSuffix("_model_states.pt") { mpFiles += 1; continue }
            guard n.hasPrefix("layer_"), n.hasSuffix("-model_states.pt") else { continue }
            let core = n.dropFirst("layer_".count).dropLast("-model_states.pt".count)   // "XX-model_TT"
            let parts = core.split(separator: "-")
            guard parts.count == 2, let xx = Int(parts[0]), parts[1].hasPrefix("model_"), let tt = Int(parts[1].dropFirst("model_".count)) else {
                throw CheckpointError.badConfig(file: tagDir.appendingPathComponent(n).path, "unrecognised layer file name")
            }
            layerFiles[xx, default: [:]][tt] = tagDir.appendingPathComponent(n)
        }
        let ids = layerFiles.keys.sorted()
        if ids.isEmpty { return try loadModuleFiles(tagDir, tag: tag, options: options) }
        guard ids.count >= 2 else { throw CheckpointError.missingShard(file: tagDir.path, "needs at least an embedding and a final-norm layer file") }
        let mp0 = tagDir.appendingPathComponent("mp_rank_00_model_states.pt")
        guard fm.fileExists(atPath: mp0.path) else { throw CheckpointError.missingShard(file: mp0.path, "holds the args; it is missing") }
        let meta = try loadNamed(mp0)
        let args = MegatronArgs(meta["args"], file: mp0.path, overrides: options.argOverrides)
        try args.validate()
        let version = try checkpointVersion(meta, file: mp0.path)
        var problems: [String] = []
        let foundTP = Set(layerFiles.values.flatMap(\.keys)).count
        let tp = args.tensorParallel ?? foundTP
        if tp != foundTP { throw CheckpointError.badConfig(file: tagDir.path, "args say TP \(tp), layer files show \(foundTP) TP ranks") }
        let pp = args.pipelineParallel ?? max(1, mpFiles / max(tp, 1))
        if mpFiles != pp * tp { problems.append("found \(mpFiles) mp_rank_*_model_states.pt files, expected TP \(tp) × PP \(pp) = \(pp * tp)") }
        for xx in ids {
            for t in 0..<tp where layerFiles[xx]![t] == nil {
                throw CheckpointError.missingShard(file: tagDir.appendingPathComponent(String(format: "layer_%02d-model_%02d-model_states.pt", xx, t)).path,
                                                   "layer \(xx) has no file for TP rank \(t)")
            }
        }
        // Read and rename into the legacy flat namespace, then normalise.
        var roots: [Int: [PickleValue]] = [:]
        for xx in ids { roots[xx] = try (0..<tp).map { try loadNamed(layerFiles[xx]![$0]!) } }
        var last = ids.count - 1
        let untiedHead = roots[ids[last]]![0]["lm_head.weight"] != nil
        if untiedHead { last -= 1 }
        var ranks = Array(repeating: ShardDict(), count: tp)
        var files: [URL] = []
        for t in 0..<tp {
            var flat: [(String, TensorRef, String)] = []
            func add(_ xx: Int, _ rename: (String) -> String) {
                for (k, r) in roots[xx]![t].flattenTensors() { flat.append((rename(k), r, layerFiles[xx]![t]!.path)) }
                files.append(layerFiles[xx]![t]!)
            }
            add(ids[0]) { "embedding." + $0 }
            for (i, xx) in ids[1..<last].enumerated() { add(xx) { "encoder.layers.\(i)." + $0 } }
            add(ids[last]) { "encoder.final_layernorm." + $0 }
            if untiedHead { add(ids[last + 1]) { $0 == "lm_head.weight" ? "output_layer.weight" : "lm_head." + $0 } }
            for (k, r, f) in flat {
                let single = try MegatronNames.normalize([(k, r)], file: f)
                for (n, s) in single { ranks[t][n] = s }
            }
        }
        let (ck, shards) = try assembleMegatron(ranks: ranks, args: args, version: version, tp: tp, layers: last - 1,
                                      options: options, format: "deepspeed", problems: &problems)
        return LoadReport(checkpoint: ck, format: "deepspeed", iteration: meta["iteration"]?.intValue,
                          tensorParallel: tp, pipelineParallel: pp, checkpointVersion: version,
                          files: [mp0] + files, dtypes: dtypes(of: ranks), problems: problems, shards: shards, args: meta["args"])
    }

    /// Non-pipeline engine checkpoints: `mp_rank_TT_model_states.pt` with the model under `module`.
    static func loadModuleFiles(_ tagDir: URL, tag: String, options: LoadOptions) throws -> LoadReport {
        let mp0 = tagDir.appendingPathComponent("mp_rank_00_model_states.pt")
        guard FileManager.default.fileExists(atPath: mp0.path) else { throw CheckpointError.missingShard(file: mp0.path, "no layer files and no rank-0 model states") }
        let meta = try loadNamed(mp0)
        let args = MegatronArgs(meta["args"], file: mp0.path, overrides: options.argOverrides)
        try args.validate()
        let version = try checkpointVersion(meta, file: mp0.path)
        guard let module = meta["module"], !module.isNone else {
            throw CheckpointError.missingShard(file: mp0.path, "'module' is None and there are no layer_*-model_*-model_states.pt files")
        }
        if let pp = args.pipelineParallel, pp != 1 { throw CheckpointError.badConfig(file: mp0.path, "args say PP \(pp) but there are no pipeline layer files") }
        let tp = args.tensorParallel ?? 1
        var ranks: [ShardDict] = [], files: [URL] = []
        for t in 0..<tp {
            let u = tagDir.appendingPathComponent(String(format: "mp_rank_%02d_model_states.pt", t))
            guard FileManager.default.fileExists(atPath: u.path) else { throw CheckpointError.missingShard(file: u.path, "TP \(tp) from args needs it") }
            let m = t == 0 ? module : (try loadNamed(u)["module"] ?? .none)
            ranks.append(try MegatronNames.normalize(m.flattenTensors(), file: u.path)); files.append(u)
        }
        var problems: [String] = []
        let (ck, shards) = try assembleMegatron(ranks: ranks, args: args, version: version, tp: tp, layers: MegatronNames.layerCount(ranks[0]),
                                      options: options, format: "deepspeed", problems: &problems)
        return LoadReport(checkpoint: ck, format: "deepspeed", iteration: meta["iteration"]?.intValue, tensorParallel: tp,
                          pipelineParallel: 1, checkpointVersion: version, files: files, dtypes: dtypes(of: ranks), problems: problems, shards: shards,
                          args: meta["args"])
    }
}
