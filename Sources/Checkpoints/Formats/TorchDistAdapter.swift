// TorchDistAdapter: megatron-core `torch_dist` saves (PyTorch Distributed Checkpoint, DCP) to a
// `CanonicalCheckpoint`.
//
// Owns the layout (docs/formats.md#torch-dist): `latest_checkpointed_iteration.txt` -> `iter_%07d/` (or `release/`)
// holding `metadata.json` ({"sharded_backend": "torch_dist", ...}), `common.pt` (args,
// checkpoint_version, iteration; from megatron-core 0.19 a DCP byte object `common_state` instead), `.metadata` (a pickle of DCP's `Metadata`: for every key its dtype,
// GLOBAL shape and chunks (offsets, sizes); for every chunk a `_StorageInfo` (relative_path, offset,
// length)) and `__R_I.distcp` files in which each tensor chunk is a whole `torch.save` zip at
// (offset, length) (PyTorch `filesystem.py` `_write_item`; raw bytes for the safetensors serialization).
// Keys are global: decoder layers are stacked under one key without the index, on a leading
// num_layers axis, and every chunk is one (layer, TP rank) block; chunks are reassembled into global
// tensors, checked to cover them exactly once, and then read as one TP 1 megatron-core shard
// (checkpoint_version >= 2 fused QKV [ng][np/ng+2][hn] is the same rows globally). Optimizer state,
// RNG state and `_extra_state` blobs are skipped.
// Memory: the global tensors are held in f32 while the merger copies them (2x the weights at peak).
// Does not own: the pickle VM (its DCP allow-list is in Pickle.swift), naming and TP merging (MegatronMerge).

import Foundation
import TensorCore
import Model

public enum TorchDistAdapter {
    /// A torch_dist iteration directory: `metadata.json` naming the torch_dist backend, or a DCP `.metadata`.
    static func isTorchDistIteration(_ itDir: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: itDir.appendingPathComponent("metadata.json").path) ||
            fm.fileExists(atPath: itDir.appendingPathComponent(".metadata").path)
    }

    public static func isTorchDistFolder(_ dir: URL) -> Bool {
        guard let (it, _) = try? MegatronLegacyAdapter.iterationDir(dir) else { return false }
        return isTorchDistIteration(it)
    }

    public static func load(_ dir: URL, options: LoadOptions = LoadOptions()) throws -> LoadReport {
        let (itDir, iteration) = try MegatronLegacyAdapter.iterationDir(dir)
        let metaJSON = itDir.appendingPathComponent("metadata.json")
        if let d = try? Data(contentsOf: metaJSON) {
            guard let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else {
                throw CheckpointError.badConfig(file: metaJSON.path, "not a JSON object")
            }
            let backend = j["sharded_backend"] as? String ?? "?"
            guard backend == "torch_dist" else {
                throw CheckpointError.unknownFormat(path: metaJSON.path, "sharded_backend '\(backend)' (only torch_dist is read; convert with Megatron tools/checkpoint)")
            }
        }
        let meta = try DCPMetadata(url: itDir.appendingPathComponent(".metadata"))
        let (root, common) = try commonState(itDir, meta)
        let args = MegatronArgs(root["args"], file: common.path, overrides: options.argOverrides)
        try args.validate()
        let version = try checkpointVersion(root, file: common.path)

        // Global tensors, chunk by chunk, in one memory source.
        let store = GlobalTensorStore(path: itDir.path)
        var flat: [(String, TensorRef)] = []
        var files: Set<String> = []
        var dtypes: Set<StorageDType> = []
        var mapped: [String: MappedFile] = [:]
        for (fqn, t) in meta.tensors.sorted(by: { $0.key < $1.key }) {
            guard let key = modelKey(fqn) else { continue }
            let total = try checkedCount(t.size, fqn, meta.path)
            if let why = coverageProblem(t.chunks, size: t.size) {
                throw CheckpointError.badConfig(file: meta.path, "'\(fqn)' \(t.size): \(why)")
            }
            var buf = [Float](repeating: 0, count: total)
            var covered = 0
            for c in t.chunks {
                guard let si = meta.storage[DCPMetadata.ChunkKey(fqn: fqn, offsets: c.offsets)] else {
                    throw CheckpointError.missingRecord(file: meta.path, record: "\(fqn) chunk at \(c.offsets)")
                }
                let url = itDir.appendingPathComponent(si.path)
                files.insert(si.path)
                if mapped[si.path] == nil { mapped[si.path] = try MappedFile(url: url) }
                let chunk = try readChunk(mapped[si.path]!, si, url: url, fqn: fqn, sizes: c.sizes, dtype: t.dtype)
                try place(chunk, offsets: c.offsets, sizes: c.sizes, into: &buf, global: t.size, fqn: fqn, file: url.path)
                covered += chunk.count
            }
            guard covered == total else {
                throw CheckpointError.shapeMismatch(file: meta.path, tensor: "\(fqn) (elements covered by its chunks)", expected: [total], found: [covered])
            }
            dtypes.insert(t.dtype)
            store.tensors[fqn] = buf
            // Stacked decoder layers: one reference per layer into the global tensor.
            if key.hasPrefix("decoder.layers."), let rest = key.split(separator: ".", maxSplits: 2).dropFirst(2).first, Int(rest.split(separator: ".")[0]) == nil {
                guard let L = t.size.first, L > 0 else { throw CheckpointError.shapeMismatch(file: meta.path, tensor: fqn, expected: [-1], found: t.size) }
                let inner = Array(t.size.dropFirst()), n = total / L
                for i in 0..<L {
                    flat.append(("decoder.layers.\(i).\(rest)", TensorRef(storage: store.ref(fqn, numel: total), offset: i * n, shape: inner, stride: contiguousStrides(inner))))
                }
            } else {
                flat.append((key, TensorRef(storage: store.ref(fqn, numel: total), offset: 0, shape: t.size, stride: contiguousStrides(t.size))))
            }
        }
        mapped = [:]
        let shard = try MegatronNames.normalize(flat, file: meta.path)
        guard shard["word"] != nil else { throw CheckpointError.missingTensor(file: meta.path, tensor: "embedding.word_embeddings.weight") }
        var problems: [String] = []
        var notes: [String] = []
        // `_extra_state/shard_i_n` byte objects (Transformer Engine FP8 state), one per key and shard.
        let extra = meta.keys.filter { $0.contains("_extra_state") }.count
        if extra > 0 { notes.append("\(extra) _extra_state entries skipped (module extra state, e.g. Transformer Engine FP8 metadata; not weights)") }
        let optimizer = meta.keys.filter { $0.hasPrefix("optimizer.") }
        if !optimizer.isEmpty {
            let distributed = optimizer.contains { $0.hasPrefix("optimizer.distributed.") } || (args.bool("use_distributed_optimizer") ?? false)
            notes.append("optimizer state skipped (\(optimizer.count) entries\(distributed ? ", distributed optimizer" : ""))")
        }
        // Global tensors read as one TP rank; the saved TP x PP is reported from the args.
        let (ck, shards) = try assembleMegatron(ranks: [shard], args: args, version: version, tp: 1, layers: MegatronNames.layerCount(shard),
                                                options: options, format: "megatron-core-torch-dist", problems: &problems)
        var ckpt = ck
        if let d = dtypes.first, dtypes.count == 1 { ckpt.sourceDType = d }
        return LoadReport(checkpoint: ckpt, format: "megatron-core-torch-dist", iteration: iteration ?? root["iteration"]?.intValue,
                          tensorParallel: args.tensorParallel ?? 1, pipelineParallel: args.pipelineParallel ?? 1, checkpointVersion: version,
                          files: (FileManager.default.fileExists(atPath: common.path) ? [common] : []) + [URL(fileURLWithPath: meta.path)] + files.sorted().map { itDir.appendingPathComponent($0) },
                          dtypes: dtypes, problems: problems, shards: shards, args: root["args"], notes: notes)
    }

    /// The common state (args, checkpoint_version, iteration) and the file it came from: `common.pt`, or
    /// (megatron-core >= 0.19, which dropped common.pt) the DCP byte object `common_state/shard_0_1`, a
    /// `torch.save` of `[state]` at (offset, length) in one of the `.distcp` files.
    static func commonState(_ itDir: URL, _ meta: DCPMetadata) throws -> (PickleValue, URL) {
        let common = itDir.appendingPathComponent("common.pt")
        if FileManager.default.fileExists(atPath: common.path) { return (try TorchFile.load(common), common) }
        guard let si = meta.storage[DCPMetadata.ChunkKey(fqn: "common_state/shard_0_1", offsets: [])] else {
            throw CheckpointError.missingShard(file: common.path, "torch_dist common state is missing (no common.pt, no common_state object in .metadata)")
        }
        let url = itDir.appendingPathComponent(si.path)
        let m = try MappedFile(url: url)
        guard si.offset >= 0, si.length >= 0, si.offset <= m.data.count - si.length else {
            throw CheckpointError.truncated(file: url.path, "common_state at \(si.offset)+\(si.length) lies outside the file's \(m.data.count) bytes")
        }
        let name = "\(url.path)[common_state]"
        let root = try TorchFile(data: Data(m.data[si.offset..<(si.offset + si.length)]), path: name).root()
        if case .list(let xs) = root, let first = xs.first { return (first, URL(fileURLWithPath: name)) }
        return (root, URL(fileURLWithPath: name))
    }

    /// The model-state key of a DCP key, nil for what is not model weights (optimizer, RNG, extra state).
    static func modelKey(_ fqn: String) -> String? {
        var k = fqn
        for p in ["model.", "module."] where k.hasPrefix(p) { k.removeFirst(p.count) }
        if k.hasPrefix("optimizer.") || k.hasPrefix("rng_state") || k.contains("_extra_state") { return nil }
        return k
    }

    /// Why `chunks` do not tile a tensor of `size` exactly once (in bounds, pairwise disjoint, all
    /// elements covered), or nil when they do.
    static func coverageProblem(_ chunks: [(offsets: [Int], sizes: [Int])], size: [Int]) -> String? {
        var covered = 0
        for (i, c) in chunks.enumerated() {
            guard c.offsets.count == size.count, c.sizes.count == size.count,
                  zip(zip(c.offsets, c.sizes), size).allSatisfy({ $0.0 >= 0 && $0.1 >= 0 && $0.0 <= $1 - $0.1 }) else {
                return "chunk at \(c.offsets) of size \(c.sizes) lies outside the tensor"
            }
            guard let n = checkedProduct(c.sizes) else { return "chunk size \(c.sizes) overflows" }
            covered += n
            for d in chunks[..<i] where n > 0 && (checkedProduct(d.sizes) ?? 0) > 0 {
                let overlap = (0..<size.count).allSatisfy { k in c.offsets[k] < d.offsets[k] + d.sizes[k] && d.offsets[k] < c.offsets[k] + c.sizes[k] }
                if overlap { return "chunks at \(d.offsets) and \(c.offsets) overlap" }
            }
        }
        let total = checkedProduct(size) ?? -1
        return covered == total ? nil : "its chunks cover \(covered) of \(total) elements"
    }

    static func checkedCount(_ shape: [Int], _ fqn: String, _ file: String) throws -> Int {
        guard let n = checkedProduct(shape), n < (1 << 40) else { throw CheckpointError.outOfBounds(file: file, tensor: fqn, "impossible shape \(shape)") }
        return n
    }

    /// One chunk's elements (row-major, f32): a torch.save zip at (offset, length), or raw bytes.
    static func readChunk(_ m: MappedFile, _ si: DCPMetadata.StorageInfo, url: URL, fqn: String, sizes: [Int], dtype: StorageDType) throws -> [Float] {
        guard si.offset >= 0, si.length >= 0, si.offset <= m.count, si.length <= m.count - si.offset, let base = m.base else {
            throw CheckpointError.truncated(file: url.path, "\(fqn): chunk at \(si.offset)+\(si.length), file has \(m.count) bytes")
        }
        let n = try checkedCount(sizes, fqn, url.path)
        let blob = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base + si.offset), count: si.length, deallocator: .none)
        let name = "\(url.path)@\(si.offset)"
        if si.length >= 4 && blob.le32(0) == 0x0403_4b50 {
            guard case .tensor(let ref) = try TorchFile(data: blob, path: name).root() else {
                throw CheckpointError.badConfig(file: name, "\(fqn): the chunk's torch.save record is not a tensor")
            }
            guard ref.shape == sizes else { throw CheckpointError.shapeMismatch(file: name, tensor: fqn, expected: sizes, found: ref.shape) }
            return try ref.materialize(name: fqn).data
        }
        guard si.length == n * dtype.byteSize else {
            throw CheckpointError.truncated(file: name, "\(fqn): raw chunk has \(si.length) bytes, \(sizes) \(dtype.rawValue) needs \(n * dtype.byteSize)")
        }
        return blob.withUnsafeBytes { decodeToFloat($0.baseAddress!, dtype: dtype, count: n) }
    }

    /// Copy a chunk [sizes] into the global row-major tensor [global] at `offsets`.
    static func place(_ chunk: [Float], offsets: [Int], sizes: [Int], into buf: inout [Float], global: [Int], fqn: String, file: String) throws {
        guard offsets.count == global.count, sizes.count == global.count,
              zip(zip(offsets, sizes), global).allSatisfy({ $0.0 >= 0 && $0.1 >= 0 && $0.0 + $0.1 <= $1 }) else {
            throw CheckpointError.outOfBounds(file: file, tensor: fqn, "chunk at \(offsets) of size \(sizes) lies outside \(global)")
        }
        if chunk.isEmpty { return }
        let d = global.count
        if d == 0 { buf[0] = chunk[0]; return }
        let strides = contiguousStrides(global), run = sizes[d - 1]
        var idx = [Int](repeating: 0, count: d)   // index within the chunk, last dim stepped by runs
        var src = 0
        buf.withUnsafeMutableBufferPointer { dst in
            chunk.withUnsafeBufferPointer { s in
                while true {
                    var at = 0
                    for k in 0..<d { at += (offsets[k] + idx[k]) * strides[k] }
                    (dst.baseAddress! + at).update(from: s.baseAddress! + src, count: run)
                    src += run
                    var k = d - 2
                    while k >= 0 { idx[k] += 1; if idx[k] < sizes[k] { break }; idx[k] = 0; k -= 1 }
                    if k < 0 { break }
                }
            }
        }
    }
}

func contiguousStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
    return s
}

/// Reassembled global f32 tensors, served as storages to `TensorRef`s (key = DCP key).
final class GlobalTensorStore: StorageSource, @unchecked Sendable {
    let path: String
    var tensors: [String: [Float]] = [:]
    init(path: String) { self.path = path }

    func ref(_ key: String, numel: Int) -> StorageRef { StorageRef(dtype: .float32, key: key, location: "cpu", numel: numel, source: self) }

    func storageBytes(key: String) throws -> Data {
        guard let t = tensors[key] else { throw CheckpointError.missingRecord(file: path, record: key) }
        return t.withUnsafeBytes { Data($0) }
    }

    func readStorage(key: String, byteOffset: Int, count: Int, into dst: UnsafeMutableRawPointer) throws -> Bool {
        guard let t = tensors[key] else { throw CheckpointError.missingRecord(file: path, record: key) }
        guard byteOffset >= 0, count >= 0, byteOffset + count <= t.count * 4 else {
            throw CheckpointError.truncated(file: path, "'\(key)' has \(t.count * 4) bytes, the tensor needs \(byteOffset)+\(count)")
        }
        t.withUnsafeBytes { memcpy(dst, $0.baseAddress! + byteOffset, count) }
        return true
    }
}

/// The parts of DCP's pickled `Metadata` a loader needs.
struct DCPMetadata {
    struct Tensor { let dtype: StorageDType; let size: [Int]; let chunks: [(offsets: [Int], sizes: [Int])] }
    struct ChunkKey: Hashable { let fqn: String; let offsets: [Int] }
    struct StorageInfo { let path: String; let offset: Int; let length: Int }
    let path: String
    var tensors: [String: Tensor] = [:]
    var storage: [ChunkKey: StorageInfo] = [:]
    /// Every key of `state_dict_metadata`, tensors and byte objects alike (for the skipped-entry notes).
    var keys: [String] = []

    init(url: URL) throws {
        path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missingShard(file: path, "the DCP metadata file is missing") }
        let m = try MappedFile(url: url)
        let root = try Pickle.load(data: m.data, file: path)
        func bad(_ what: String) -> CheckpointError { .badConfig(file: url.path, "DCP metadata: \(what)") }
        guard case .object(let md) = root, md.className == "torch.distributed.checkpoint.metadata.Metadata" else {
            throw bad("expected a torch.distributed.checkpoint.metadata.Metadata")
        }
        guard case .dict(let sdm)? = md.attribute("state_dict_metadata") else { throw bad("no state_dict_metadata") }
        for (k, v) in sdm.items {
            guard case .string(let fqn) = k, case .object(let o) = v else { throw bad("a state_dict_metadata entry is not (key, object)") }
            keys.append(fqn)
            if o.className.hasSuffix(".BytesStorageMetadata") { continue }
            guard o.className.hasSuffix(".TensorStorageMetadata") else { throw bad("'\(fqn)' has unknown storage metadata \(o.className)") }
            guard let size = Self.ints(o.attribute("size")) else { throw bad("'\(fqn)' has no size") }
            var dtypeName: String?
            if case .object(let p)? = o.attribute("properties") {
                switch p.state {   // TensorProperties.__getstate__: (dtype, layout, requires_grad, memory format, pin_memory)
                case .tuple(let t)?: if case .global(let g)? = t.first { dtypeName = g }
                case .dict(let d)?: if case .global(let g)? = d["dtype"] { dtypeName = g }
                default: break
                }
            }
            guard let dn = dtypeName, dn.hasPrefix("torch."), let dtype = GlobalPolicy.torchDType(String(dn.dropFirst(6))) else {
                throw CheckpointError.unsupportedDType(file: url.path, tensor: fqn, dtypeName ?? "missing")
            }
            guard case .list(let cs)? = o.attribute("chunks") else { throw bad("'\(fqn)' has no chunk list") }
            let chunks = try cs.map { c -> (offsets: [Int], sizes: [Int]) in
                guard case .object(let co) = c, let off = Self.ints(co.attribute("offsets")), let sz = Self.ints(co.attribute("sizes")) else {
                    throw bad("'\(fqn)' has a malformed chunk")
                }
                return (off, sz)
            }
            tensors[fqn] = Tensor(dtype: dtype, size: size, chunks: chunks)
        }
        guard case .dict(let sd)? = md.attribute("storage_data") else { throw bad("no storage_data") }
        for (k, v) in sd.items {
            guard case .object(let idx) = k, case .string(let fqn)? = idx.attribute("fqn"), case .object(let info) = v else { throw bad("a storage_data entry is not (MetadataIndex, _StorageInfo)") }
            let offsets = Self.ints(idx.attribute("offset")) ?? []
            guard case .string(let rel)? = info.attribute("relative_path"), let off = info.attribute("offset")?.intValue,
                  let len = info.attribute("length")?.intValue else { throw bad("'\(fqn)' has a malformed _StorageInfo") }
            // Untrusted: a data file must be a plain name inside the iteration directory.
            guard !rel.isEmpty, !rel.contains("/"), rel != "..", rel != "." else { throw bad("'\(fqn)' names data file '\(rel)' outside the directory") }
            if case .list(let ds)? = info.attribute("transform_descriptors"), !ds.isEmpty {
                throw bad("'\(fqn)' is stored with transforms \(ds) (compressed or extended storage is not read)")
            }
            storage[ChunkKey(fqn: fqn, offsets: offsets)] = StorageInfo(path: rel, offset: off, length: len)
        }
    }

    /// A `torch.Size` (REDUCE of torch.Size with a tuple) or a plain tuple/list of ints.
    static func ints(_ v: PickleValue?) -> [Int]? {
        switch v {
        case .object(let o)? where o.className == "torch.Size": return ints(o.args.first ?? .tuple([]))
        case .tuple(let xs)?, .list(let xs)?:
            var out: [Int] = []
            for x in xs { guard case .int(let i) = x else { return nil }; out.append(i) }
            return out
        default: return nil
        }
    }
}
