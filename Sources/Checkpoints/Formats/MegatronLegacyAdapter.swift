// MegatronLegacyAdapter: Megatron-LM legacy `torch` checkpoints to a `CanonicalCheckpoint`.
//
// Owns the directory layout: `latest_checkpointed_iteration.txt` (integer or `release`) ->
// `iter_%07d/` or `release/` -> `mp_rank_TT/` (PP = 1) or `mp_rank_TT_PPP/` -> `model_optim_rng.pt`;
// TP/PP from the saved args (`tensor_model_parallel_size`/`pipeline_model_parallel_size`, or the old
// `model_parallel_size`) cross-checked against the directories present; virtual-pipeline chunks
// (`model0`, `model1`, ...); layer offsets from the layer counts found per chunk (uneven stages allowed),
// in global order chunk-major then stage (docs/formats.md#pipeline-layers). Naming and TP merging live in MegatronMerge.
// Read past with a note: Transformer Engine `_extra_state` entries (BytesIO or uint8 tensors) and the
// distributed optimizer's `distrib_optim.pt` beside each rank file (`--use-distributed-optimizer`:
// optimizer state sharded over data-parallel ranks, not by the model's TP x PP).

import Foundation
import TensorCore
import Model

public enum MegatronLegacyAdapter {
    static let tracker = "latest_checkpointed_iteration.txt"

    public static func isMegatronFolder(_ dir: URL) -> Bool {
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir.appendingPathComponent(tracker).path) else { return false }
        guard let (it, _) = try? iterationDir(dir) else { return false }
        let names = (try? fm.contentsOfDirectory(atPath: it.path)) ?? []
        return names.contains { $0.hasPrefix("mp_rank_") && !$0.hasSuffix(".pt") }
    }

    /// (directory of the tracked iteration, iteration number or nil for release)
    static func iterationDir(_ dir: URL) throws -> (URL, Int?) {
        let t = try readText(dir.appendingPathComponent(tracker))
        if t == "release" { return (dir.appendingPathComponent("release"), nil) }
        guard let n = Int(t), n >= 0 else {
            throw CheckpointError.badConfig(file: dir.appendingPathComponent(tracker).path, "tracker holds '\(t)', expected an iteration number or 'release'")
        }
        return (dir.appendingPathComponent(String(format: "iter_%07d", n)), n)
    }

    /// Megatron saves each rank's args as that process saw them, with its global `rank`. When the
    /// files record different ranks (conversion tools write 0 everywhere: nothing to check), each must
    /// sit in the folder of its (TP rank, stage): rank = t + p × (world_size / PP) (data-parallel rank 0
    /// saves). Swapped or renamed rank folders are refused naming both.
    static func checkSavedRanks(_ saved: [(rank: Int?, t: Int, p: Int, file: String)], tp: Int, pp: Int, world: Int?) throws {
        let ranks = saved.compactMap(\.rank)
        guard ranks.count == saved.count, Set(ranks).count > 1 else { return }
        let perStage = max(1, (world ?? tp * pp) / max(pp, 1))
        for s in saved {
            let r = s.rank!
            guard r >= 0, r % tp != s.t || r / perStage != s.p else { continue }
            let owner = saved.first { $0.t == r % tp && $0.p == r / perStage }
            throw CheckpointError.rankMismatch(files: [s.file] + (owner.map { [$0.file] } ?? []),
                "the first was saved by global rank \(r) (TP rank \(r % tp), stage \(r / perStage)) but sits in the folder of TP rank \(s.t), stage \(s.p): rank folders are swapped or renamed")
        }
    }

    static func rankFile(_ d: URL) -> URL {
        for n in ["model_optim_rng.pt", "model_rng.pt"] {
            let u = d.appendingPathComponent(n)
            if FileManager.default.fileExists(atPath: u.path) { return u }
        }
        return d.appendingPathComponent("model_optim_rng.pt")
    }

    public static func load(_ dir: URL, options: LoadOptions = LoadOptions()) throws -> LoadReport {
        let fm = FileManager.default
        let (itDir, iteration) = try iterationDir(dir)
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: itDir.path, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.missingShard(file: itDir.path, "the tracker points to \(itDir.lastPathComponent)/, which does not exist")
        }
        // Rank directories present: (tp, pp?) parsed from names.
        var found: [String: (Int, Int?)] = [:]
        for n in try fm.contentsOfDirectory(atPath: itDir.path) where n.hasPrefix("mp_rank_") {
            let parts = n.dropFirst("mp_rank_".count).split(separator: "_")
            guard (1...2).contains(parts.count), let t = Int(parts[0]) else {
                throw CheckpointError.badConfig(file: itDir.appendingPathComponent(n).path, "unsupported rank directory name (expert parallelism?)")
            }
            found[n] = (t, parts.count == 2 ? Int(parts[1]) : nil)
        }
        if found.isEmpty && (fm.fileExists(atPath: itDir.appendingPathComponent(".metadata").path) ||
                             fm.fileExists(atPath: itDir.appendingPathComponent("metadata.json").path)) {
            throw CheckpointError.unknownFormat(path: itDir.path,
                "this is a torch_dist (distributed checkpoint) directory, read by TorchDistAdapter, not the legacy layout")
        }
        guard let firstName = ["mp_rank_00", "mp_rank_00_000"].first(where: { found[$0] != nil }) else {
            throw CheckpointError.missingShard(file: itDir.appendingPathComponent("mp_rank_00").path, "no rank-0 directory (mp_rank_00 or mp_rank_00_000)")
        }
        let first = try TorchFile.load(rankFile(itDir.appendingPathComponent(firstName)))
        let file0 = rankFile(itDir.appendingPathComponent(firstName)).path
        let args = MegatronArgs(first["args"], file: file0, overrides: options.argOverrides)
        try args.validate()
        let version = try checkpointVersion(first, file: file0)
        var problems: [String] = []
        let foundTP = Set(found.values.map(\.0)).count
        let foundPP = Set(found.values.map { $0.1 ?? 0 }).count
        let tp = args.tensorParallel ?? foundTP
        let pp = args.pipelineParallel ?? foundPP
        if args.tensorParallel == nil { problems.append("args record no tensor parallel size; using the \(tp) rank directories found") }
        // Every rank directory the args imply must exist, and no others.
        var rankDirs: [[URL]] = []   // [pp][tp]
        var expected: Set<String> = []
        for p in 0..<pp {
            var row: [URL] = []
            for t in 0..<tp {
                var name = pp == 1 ? String(format: "mp_rank_%02d", t) : String(format: "mp_rank_%02d_%03d", t, p)
                if pp == 1 && found[name] == nil && found[String(format: "mp_rank_%02d_000", t)] != nil { name = String(format: "mp_rank_%02d_000", t) }
                guard found[name] != nil else {
                    throw CheckpointError.missingShard(file: itDir.appendingPathComponent(name).path,
                        "TP \(tp) × PP \(pp) (from args) needs directory \(name), found only \(found.keys.sorted().joined(separator: ", "))")
                }
                let f = rankFile(itDir.appendingPathComponent(name))
                guard fm.fileExists(atPath: f.path) else { throw CheckpointError.missingShard(file: f.path, "rank file is missing") }
                expected.insert(name); row.append(f)
            }
            rankDirs.append(row)
        }
        let extra = Set(found.keys).subtracting(expected)
        if !extra.isEmpty {
            throw CheckpointError.badConfig(file: itDir.path, "directories \(extra.sorted().joined(separator: ", ")) lie outside TP \(tp) × PP \(pp) given by the args")
        }
        // Read every rank: chunks[v][p][t] normalised with local layer numbers.
        var chunks: [[[ShardDict]]] = []
        var savedRanks: [(rank: Int?, t: Int, p: Int, file: String)] = []
        var extraState = 0
        let distribOptim = rankDirs.flatMap { $0 }.filter { fm.fileExists(atPath: $0.deletingLastPathComponent().appendingPathComponent("distrib_optim.pt").path) }.count
        if distribOptim > 0 && options.optimizerMoment != nil {
            throw CheckpointError.badConfig(file: itDir.path, "saved with the distributed optimizer (distrib_optim.pt): its sharded optimizer state is not read")
        }
        for p in 0..<pp {
            for t in 0..<tp {
                let url = rankDirs[p][t]
                let root = (p == 0 && t == 0) ? first : try TorchFile.load(url)
                if !(p == 0 && t == 0) {
                    let v = try checkpointVersion(root, file: url.path)
                    if v != version { throw CheckpointError.badConfig(file: url.path, "checkpoint_version \(v) differs from rank 0's \(version)") }
                    if let d = MegatronArgs.disagreement(first["args"], root["args"]) {
                        throw CheckpointError.rankMismatch(files: [file0, url.path], "their saved args differ: \(d)")
                    }
                }
                savedRanks.append((root["args"]?["rank"]?.intValue, t, p, url.path))
                var models: [PickleValue] = []
                if let m = root["model"] { models = [m] }
                else { var v = 0; while let m = root["model\(v)"] { models.append(m); v += 1 } }
                guard !models.isEmpty else { throw CheckpointError.missingTensor(file: url.path, tensor: "model") }
                if chunks.isEmpty { chunks = Array(repeating: Array(repeating: [], count: pp), count: models.count) }
                guard models.count == chunks.count else {
                    throw CheckpointError.badConfig(file: url.path, "holds \(models.count) model chunks, rank 0 holds \(chunks.count)")
                }
                for (v, m) in models.enumerated() {
                    extraState += extraStateCount(m)
                    var leaves = m.flattenTensors()
                    if let moment = options.optimizerMoment {
                        guard models.count == 1 else { throw CheckpointError.badConfig(file: url.path, "optimizer state of virtual-pipeline chunks is not read") }
                        leaves = try Self.moments(of: leaves, root: root, moment: moment, file: url.path)
                    }
                    chunks[v][p].append(try MegatronNames.normalize(leaves, file: url.path))
                }
            }
        }
        try checkSavedRanks(savedRanks, tp: tp, pp: pp, world: args.int("world_size"))
        // Global layer offsets: chunk-major, then stage.
        var ranks = Array(repeating: ShardDict(), count: tp)
        var offset = 0
        for v in 0..<chunks.count {
            for p in 0..<pp {
                let n = MegatronNames.layerCount(chunks[v][p][0])
                for t in 0..<tp {
                    let nt = MegatronNames.layerCount(chunks[v][p][t])
                    if nt != n { throw CheckpointError.badConfig(file: rankDirs[p][t].path, "holds \(nt) layers, TP rank 0 of the stage holds \(n)") }
                    for (k, x) in MegatronNames.renumber(chunks[v][p][t], offset: offset) where ranks[t][k] == nil { ranks[t][k] = x }
                }
                offset += n
            }
        }
        let (ck, shards) = try assembleMegatron(ranks: ranks, args: args, version: version, tp: tp, layers: offset,
                                      options: options, format: "megatron-legacy", problems: &problems)
        var notes: [String] = []
        if extraState > 0 { notes.append("\(extraState) _extra_state entries skipped (module extra state, e.g. Transformer Engine FP8 metadata; not weights)") }
        if distribOptim > 0 {
            notes.append("optimizer state skipped: distributed optimizer (distrib_optim.pt in \(distribOptim) rank directories)")
        }
        return LoadReport(checkpoint: ck, format: "megatron-legacy", iteration: iteration ?? first["iteration"]?.intValue,
                          tensorParallel: tp, pipelineParallel: pp, checkpointVersion: version,
                          files: rankDirs.flatMap { $0 }, dtypes: dtypes(of: ranks), problems: problems, shards: shards,
                          args: first["args"], notes: notes)
    }

    /// The rank's parameters (`leaves`, named_parameters() order) paired with their `moment` tensor
    /// from the torch optimizer state, indexed as Megatron's _get_param_groups orders them (no weight
    /// decay for biases and 1-D tensors, groups in first-appearance order; see MegatronTrainingState).
    static func moments(of leaves: [(String, TensorRef)], root: PickleValue, moment: String, file: String) throws -> [(String, TensorRef)] {
        guard case .dict(let state)? = root["optimizer"]?["state"] else {
            throw CheckpointError.missingTensor(file: file, tensor: "optimizer.state (saved without the optimizer, e.g. --no-save-optim?)")
        }
        var groups: [(Bool, [Int])] = []
        for (i, (n, t)) in leaves.enumerated() {
            let decay = !(n.hasSuffix(".bias") || t.shape.count == 1)
            if let g = groups.firstIndex(where: { $0.0 == decay }) { groups[g].1.append(i) } else { groups.append((decay, [i])) }
        }
        let order = groups.flatMap(\.1)
        guard state.items.count == leaves.count else {
            throw CheckpointError.badConfig(file: file, "optimizer state holds \(state.items.count) parameters, the model \(leaves.count)")
        }
        var out = leaves
        for (k, v) in state.items {
            guard case .int(let idx) = k, idx >= 0, idx < order.count, case .tensor(let t)? = v[moment] else {
                throw CheckpointError.badConfig(file: file, "optimizer state entry \(k) has no \(moment) tensor")
            }
            let (name, w) = leaves[order[idx]]
            guard t.shape == w.shape else {
                throw CheckpointError.shapeMismatch(file: file, tensor: "optimizer.state.\(idx).\(moment) (for \(name))", expected: w.shape, found: t.shape)
            }
            out[order[idx]] = (name, t)
        }
        return out
    }
}
