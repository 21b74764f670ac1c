// Hostile inputs against every checkpoint reader: corrupted variants built here from checkpoints this
// test writes itself (seeded random weights, no ../shared), each with its exact outcome: the typed error
// naming the file, entry, field or tensor, or a correct load. Variants per test are counted and
// asserted (this file: 269; with TasksTests/HostileTaskInputTests, TensorCoreTests/OutputWritingTests,
// EvaluationTests/HostileScoringTests and LMEvalBranchTests, CLITests/HostileCLITests, about 325). Classes: zip CRC and truncation (4), pickle
// nesting and globals (2), integers from files and flags (3), non-finite weights (4), ranks and layer
// files that disagree or are swapped (4), `latest` escaping its folder (5), messages (7).

import XCTest
import Foundation
@testable import Checkpoints
import Model
import TensorCore

final class HostileInputTests: XCTestCase {
    static let cfg = ModelConfig(vocabSize: 64, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 16, activation: .geluTanh)

    func write(_ ck: CanonicalCheckpoint, _ target: ConvertTarget, tp: Int = 1, pp: Int = 1) throws -> URL {
        let dir = try tempDir().appendingPathComponent("ckpt")
        try CheckpointWriter.write(ck, to: dir, target: target, options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .tensorParallel)))
        addTeardownBlock { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        return dir
    }

    func rankFiles(_ dir: URL) -> [URL] {
        CheckpointLoader.allFiles(dir).filter { $0.pathExtension == "pt" }
    }

    /// `body` must throw a CheckpointError for which `check` holds.
    func expect(_ what: String, _ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line, _ check: (CheckpointError) -> Bool) {
        do {
            _ = try body()
            XCTFail("\(what): loaded", file: file, line: line)
        } catch let e as CheckpointError {
            XCTAssertTrue(check(e), "\(what): \(e)", file: file, line: line)
        } catch {
            XCTFail("\(what): untyped \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    // MARK: class 4: a flipped byte in any record is a CRC error naming the file and the entry

    /// The CRC the reader checks with (PCLMUL folding when the CPU has it, tables otherwise) equals a
    /// bit-by-bit CRC-32 at every length and alignment.
    func testCRC32MatchesBitwiseAtEveryLengthAndAlignment() {
        var rng = SystemRandomNumberGenerator()
        let buf = (0..<(1 << 20) + 77).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for off in 0..<16 {
            for len in Array(0...300) + [1023, 4096, 65_537] {
                let part = Array(buf[off..<(off + len)])
                XCTAssertEqual(CRC32.checksum(part), bitwiseCRC32(part), "offset \(off) length \(len)")
            }
        }
        XCTAssertEqual(CRC32.checksum(buf), bitwiseCRC32(buf))
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    func testEveryFlippedRecordIsAChecksumErrorNamingTheEntry() throws {
        let ck = CanonicalCheckpoint.random(config: Self.cfg, seed: 3, std: 0.1)
        let dir = try write(ck, .megatron, tp: 2)
        var n = 0
        for f in rankFiles(dir) {
            let original = try Data(contentsOf: f)
            let tf = try TorchFile(url: f)
            for e in tf.archive.entries where e.name.contains("/data/") || e.name.hasSuffix("data.pkl") {
                let r = try tf.archive.payloadRange(of: e)
                guard r.count > 0 else { continue }
                var bad = original; bad[r.lowerBound + r.count / 2] ^= 0x10
                try bad.write(to: f)
                expect("\(f.lastPathComponent) \(e.name)", { try CheckpointLoader.load(dir) }) {
                    guard case .checksumMismatch(let file, let entry, let exp, let found) = $0 else { return false }
                    return file == f.path && entry == e.name && exp == e.crc32 && found != exp
                }
                n += 1
            }
            try original.write(to: f)
        }
        XCTAssertEqual(n, 58)
        // the same flip with the check off loads, with a different weight: the check is what catches it
        let f = rankFiles(dir)[0], original = try Data(contentsOf: f)
        let tf = try TorchFile(url: f)
        let ref = Dictionary(uniqueKeysWithValues: try tf.root()["model"]!.flattenTensors())["language_model.embedding.word_embeddings.weight"]!
        let e = try XCTUnwrap(tf.archive.entry(named: tf.prefix + "/data/" + ref.storage.key))
        var bad = original; bad[try tf.archive.payloadRange(of: e).lowerBound + ref.offset * 4 + 3] ^= 0x01
        try bad.write(to: f)
        ZipArchive.verifyChecksums = false; defer { ZipArchive.verifyChecksums = true }
        XCTAssertNotEqual(try CheckpointLoader.load(dir).tensors["embedding.word.weight"], ck.tensors["embedding.word.weight"])
    }

    func testTruncatedAndMangledZipsAreTypedErrors() throws {
        let dir = try write(.random(config: Self.cfg, seed: 3, std: 0.1), .megatron)
        let f = rankFiles(dir)[0], original = try Data(contentsOf: f)
        var n = 0
        // truncations at 16 points
        for k in 0..<16 {
            let cut = original.count * k / 16 + (k == 0 ? 3 : 0)
            try original.prefix(cut).write(to: f)
            expect("cut at \(cut)", { try TorchFile(url: f).root() }) { "\($0)".hasPrefix(f.path + ": ") }
            n += 1
        }
        // the end-of-central-directory record's fields set to impossible values
        let eocd = original.count - 22
        for (off, width, values) in [(10, 2, [0xFFFF, 0x7FFF, 0] as [UInt32]), (12, 4, [0xFFFF_FFFF, 0x7FFF_FFFF]), (16, 4, [0xFFFF_FFFF, 0x7FFF_FFFF, 1])] {
            for v in values {
                var bad = original
                for i in 0..<width { bad[eocd + off + i] = UInt8((v >> (8 * UInt32(i))) & 0xFF) }
                try bad.write(to: f)
                expect("EOCD +\(off) = \(v)", { try TorchFile(url: f).root() }) { "\($0)".hasPrefix(f.path + ": ") }
                n += 1
            }
        }
        XCTAssertEqual(n, 24)
    }

    /// Found by the zip fuzz target: a ZIP64 locator in a file shorter than a ZIP64 record trapped
    /// ("Negative value is not representable") before the bound was checked.
    func testFuzzRegressionsZip() {
        let crashes: [[UInt8]] = [
            [0x4f, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x00, 0x50, 0x4b, 0x06, 0x07, 0x00, 0x00, 0x00, 0x00, 0x2b, 0x12, 0x00, 0x00, 0x00,
             0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x06, 0x00, 0xf3, 0x01,
             0x00, 0x00, 0x38, 0x10, 0x00, 0x00, 0x00, 0x29],
            [0x4f, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x5a, 0x5a, 0x5a, 0x00, 0x50, 0x4b, 0x06, 0x07, 0x00, 0x00, 0x00, 0x00, 0x2b, 0x12,
             0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x06, 0x00,
             0xf3, 0x01, 0x00, 0x00, 0x38, 0x10, 0x00, 0x00, 0x00, 0x29],
        ]
        for (i, c) in crashes.enumerated() {
            expect("crash \(i)", { try ZipArchive(data: Data(c), path: "z.zip") }) { $0 == .badZip(file: "z.zip", "bad ZIP64 end-of-central-directory record") }
        }
    }

    // MARK: class 2: nesting is bounded in every container the pickle VM builds

    static func nested(_ kind: String, _ depth: Int) -> [UInt8] {
        let d = depth
        func r(_ s: String, _ k: Int) -> [UInt8] { Array(repeating: Array(s.utf8), count: max(k, 0)).flatMap { $0 } }
        var p: [UInt8] = [0x80, 2]
        switch kind {
        case "list-append": p += r("]", d) + r("a", d - 1)
        case "tuple1": p += r(")", 1) + Array(repeating: 0x85, count: d - 1)
        case "tuple-mark": p += r("(", d - 1) + r(")", 1) + r("t", d - 1)
        case "list-mark": p += r("(", d) + r("l", d)
        case "dict-setitem": p += r("}K\u{0}", d - 1) + r("}", 1) + r("s", d - 1)
        case "dict-mark": p += r("(K\u{0}", d - 1) + r("(d", 1) + r("d", d - 1)
        case "set-additems": p += Array(repeating: [0x8F, 0x28], count: d - 1).flatMap { $0 } + [0x8F] + Array(repeating: 0x90, count: d - 1)
        case "frozenset": p += r("(", d) + Array(repeating: 0x91, count: d)
        case "reduce-args":   // X(X(X(...))): object, args tuple, object... via the memo
            p += r("c__main__\nX\n)Rq\u{0}0", 1)
            for _ in 1..<max(d / 2, 1) { p += r("c__main__\nX\nh\u{0}", 1) + [0x85] + r("Rq\u{0}0", 1) }
            p += r("h\u{0}", 1)
        case "memo-chain":   // lists nested after their parent was nested: the VM's bound cannot see it
            p += r("]q\u{0}q\u{1}0", 1)
            for _ in 1..<d { p += r("h\u{1}]q\u{2}a0h\u{2}q\u{1}0", 1) }
            p += r("h\u{0}", 1)
        default: fatalError(kind)
        }
        return p + [0x2E]
    }

    func testPickleNestingIsBoundedInEveryContainer() throws {
        var n = 0
        let deep = "containers nest deeper than \(Pickle.maxDepth) levels"
        let exact = ["list-append", "tuple1", "tuple-mark", "list-mark", "dict-setitem", "dict-mark", "set-additems", "frozenset"]
        for kind in exact + ["reduce-args", "memo-chain"] {
            let ok = exact.contains(kind) ? Pickle.maxDepth : 40
            XCTAssertNoThrow(try Pickle.load(Self.nested(kind, ok), file: "p.pkl"), "\(kind) at \(ok)"); n += 1
            var tooDeep = [50_000]
            if exact.contains(kind) { tooDeep.insert(Pickle.maxDepth + 1, at: 0) }
            for d in tooDeep {
                expect("\(kind) at \(d)", { try Pickle.load(Self.nested(kind, d), file: "p.pkl") }) {
                    guard case .badPickle(let f, let m) = $0 else { return false }
                    return f == "p.pkl" && m.contains(deep)
                }
                n += 1
            }
        }
        XCTAssertEqual(n, 28)
    }

    /// Inside a real checkpoint's `optimizer` entry too: the load stops naming the rank file.
    func testDeepOptimizerEntryStopsTheLoad() throws {
        let dir = try write(.random(config: Self.cfg, seed: 3, std: 0.1), .megatron)
        let f = rankFiles(dir)[0]
        let root = try TorchFile(url: f).root()
        var deep: TorchValue = .list([])
        for _ in 0..<(Pickle.maxDepth + 5) { deep = .list([deep]) }
        var model: [(String, TorchValue)] = []
        for (k, t) in root["model"]!.flattenTensors() { model.append((String(k.dropFirst("model.".count)), .tensor(TensorPayload(try t.materialize())))) }
        try TorchWriter.save(.dict([("args", .namespace(MegatronWriterArgs.fields(Self.cfg))), ("checkpoint_version", .float(3)),
                                   ("model", .orderedDict(model)), ("optimizer", .dict([("state", deep)]))]), to: f)
        expect("optimizer", { try CheckpointLoader.load(dir) }) {
            guard case .badPickle(let file, let m) = $0 else { return false }
            return file == f.path && m.contains("nest deeper")
        }
    }

    func testForbiddenGlobalsAreRefusedByName() throws {
        let globals = ["os.system", "posix.system", "subprocess.Popen", "builtins.eval", "builtins.exec", "builtins.getattr",
                       "__builtin__.open", "torch.hub.load", "pathlib.Path", "types.FunctionType", "sys.exit", "shutil.rmtree"]
        for g in globals {
            let dot = g.lastIndex(of: ".")!
            let p = [0x80, 2] + Array("c\(g[..<dot])\n\(g[g.index(after: dot)...])\n(S'x'\ntR.".utf8)
            expect(g, { try Pickle.load(p, file: "g.pkl") }) { $0 == .forbiddenGlobal(file: "g.pkl", g) }
        }
        XCTAssertEqual(globals.count, 12)
    }

    // MARK: class 3: integers from args and --megatron-arg are checked before any arithmetic

    func testBadLayoutAndSizeArgsAreNamed() throws {
        let dir = try write(.random(config: Self.cfg, seed: 3, std: 0.1), .megatron)
        var n = 0
        let layout = ["tensor_model_parallel_size", "pipeline_model_parallel_size", "model_parallel_size", "virtual_pipeline_model_parallel_size"]
        for k in layout {
            for v in ["-2", "0", "5000", "1099511627776"] {
                expect("\(k)=\(v)", { try CheckpointLoader.load(dir, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(["\(k)=\(v)"]))) }) {
                    $0 == .badConfig(file: "--megatron-arg \(k)", "'\(k)' must be in 1...4096, found \(v)")
                }
                n += 1
            }
            expect("\(k)=abc", { try CheckpointLoader.load(dir, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(["\(k)=abc"]))) }) {
                $0 == .badConfig(file: "--megatron-arg \(k)", "'\(k)' must be an integer, found 'abc'")
            }
            n += 1
        }
        for k in MegatronArgs.sizeKeys {
            for v in ["-1", "0", "134217728"] {
                expect("\(k)=\(v)", { try CheckpointLoader.load(dir, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(["\(k)=\(v)"]))) }) {
                    $0 == .badConfig(file: "--megatron-arg \(k)", "'\(k)' must be in 1...67108864, found \(v)")
                }
                n += 1
            }
        }
        for v in ["inf", "nan", "-1.0", "0.0"] {
            expect("eps=\(v)", { try CheckpointLoader.load(dir, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(["layernorm_epsilon=\(v)"]))) }) {
                guard case .badConfig(let f, let m) = $0 else { return false }
                return f == "--megatron-arg layernorm_epsilon" && m.hasPrefix("'layernorm_epsilon' must be a positive finite number")
            }
            n += 1
        }
        // hidden size not divisible by the heads (no kv_channels): one line saying so
        expect("heads", { try CheckpointLoader.load(dir, options: LoadOptions(argOverrides: try MegatronArgs.parseOverrides(["num_attention_heads=3", "kv_channels=none"]))) }) {
            guard case .badConfig(_, let m) = $0 else { return false }
            return m == "hidden_size 16 is not divisible by num_attention_heads 3 (and no kv_channels is given)"
        }
        n += 1
        XCTAssertEqual(n, 61)
    }

    /// The same checks on args saved in the file (no flag involved).
    func testBadSavedArgsAreNamed() throws {
        var n = 0
        for (k, v) in [("pipeline_model_parallel_size", -1), ("tensor_model_parallel_size", -2), ("tensor_model_parallel_size", 0), ("num_layers", -3)] {
            let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
            try Data("release".utf8).write(to: dir.appendingPathComponent("latest_checkpointed_iteration.txt"))
            let f = dir.appendingPathComponent("release/mp_rank_00/model_optim_rng.pt")
            try FileManager.default.createDirectory(at: f.deletingLastPathComponent(), withIntermediateDirectories: true)
            var args = MegatronWriterArgs.fields(Self.cfg).filter { $0.0 != k }
            args.append((k, .int(v)))
            try TorchWriter.save(.dict([("args", .namespace(args)), ("checkpoint_version", .float(3)), ("model", .dict([]))]), to: f)
            let hi = MegatronArgs.layoutKeys.contains(k) ? 4096 : 1 << 26
            expect("saved \(k)=\(v)", { try CheckpointLoader.load(dir) }) { $0 == .badConfig(file: f.path, "'\(k)' must be in 1...\(hi), found \(v)") }
            n += 1
        }
        XCTAssertEqual(n, 4)
    }

    /// llama2.c headers: every field at 0, -1, 2^30 and Int32.max is a typed error, never a trap.
    func testLlama2cHeaderFieldsAreChecked() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("m.bin")
        let h: [Int32] = [8, 16, 1, 2, 1, 10, 4]   // dim, hidden, layers, heads, kv heads, vocab, seq
        let count = 10 * 8 + 8 + 64 + 32 + 32 + 64 + 8 + 3 * 128 + 8 + 2 * 8   // kv dim 4, freq tables P x D/2
        func file(_ h: [Int32], _ w: [Float]) -> Data {
            var d = Data(); for x in h { withUnsafeBytes(of: x.littleEndian) { d.append(contentsOf: $0) } }
            w.withUnsafeBytes { d.append(contentsOf: $0) }; return d
        }
        let weights = (0..<count).map { Float($0 % 7) * 0.01 }
        try file(h, weights).write(to: f)
        XCTAssertEqual(try Llama2cAdapter.load(f).config.hiddenSize, 8)
        var n = 0
        for i in 0..<7 {
            for v: Int32 in [0, -1, 1 << 30, .max] where !(i == 5 && v == -1) {
                var hh = h; hh[i] = v
                try file(hh, weights).write(to: f)
                do { _ = try Llama2cAdapter.load(f); XCTFail("field \(i) = \(v) loaded") } catch let e as Llama2cError {
                    XCTAssertTrue(e.description.hasPrefix(f.path + ": "), "\(e)")
                }
                n += 1
            }
        }
        // non-finite weights: named by tensor
        for (at, name) in [(0, "embedding.word.weight"), (count - 16 - 8, "final_norm.weight")] {
            var w = weights; w[at] = .nan
            try file(h, w).write(to: f)
            expect(name, { try Llama2cAdapter.load(f) }) { $0 == .nonFinite(file: f.path, tensor: name, count: 1) }
            n += 1
        }
        XCTAssertEqual(n, 29)
    }

    // MARK: class 4: non-finite weights and epsilon stop the load naming the tensor

    func testNonFiniteWeightsAreRefusedNamingTheTensor() throws {
        var n = 0
        for name in ["embedding.word.weight", "embedding.position.weight", "layers.0.attn.q.weight", "layers.1.mlp.fc2.bias", "layers.1.norm2.weight", "final_norm.bias"] {
            for v: Float in [.nan, .infinity, -.infinity] {
                var ck = CanonicalCheckpoint.random(config: Self.cfg, seed: 3, std: 0.1)
                ck.tensors[name]!.data[1] = v
                let dir = try write(ck, .hf)
                expect("\(name) = \(v)", { try CheckpointLoader.load(dir) }) { $0 == .nonFinite(file: dir.path, tensor: name, count: 1) }
                n += 1
            }
        }
        // loaded straight into TP pieces: the piece names its rank
        var ck = CanonicalCheckpoint.random(config: Self.cfg, seed: 3, std: 0.1)
        ck.tensors["layers.0.mlp.fc1.weight"]!.data[0] = .nan
        let meg = try write(ck, .megatron, tp: 2)
        expect("split", { try CheckpointLoader.loadSplit(meg, layout: ParallelLayout(tp: 2)) }) {
            guard case .nonFinite(_, let t, 1) = $0 else { return false }
            return t == "layers.0.mlp.fc1.weight (TP rank 0 piece)"
        }
        n += 1
        XCTAssertEqual(n, 19)
        // an infinite epsilon is a config problem
        var c = Self.cfg; c.normEpsilon = .infinity
        XCTAssertTrue(c.problems().contains("norm_epsilon must be positive and finite, found inf"))
    }

    func testHFConfigIntegersAreChecked() throws {
        let dir = try write(.random(config: Self.cfg, seed: 3, std: 0.1), .hf)
        let cfgURL = dir.appendingPathComponent("config.json")
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as! [String: Any]
        let cases: [(String, Any, String)] = [
            ("n_head", 0, "'n_head' must be in 1...67108864, found 0"), ("n_head", -1, "'n_head' must be in 1...67108864, found -1"),
            ("n_head", 3, "n_embd 16 is not divisible by n_head 3"), ("n_head", "2", "'n_head' must be an integer, found 2"),
            ("n_head", 1 << 40, "'n_head' must be in 1...67108864, found 1099511627776"), ("n_embd", 0, "'n_embd' must be in 1...67108864, found 0"),
            ("n_layer", -1, "'n_layer' must be in 1...67108864, found -1"), ("vocab_size", 1 << 30, "'vocab_size' must be in 1...67108864, found 1073741824"),
            ("n_positions", 0, "'n_positions' must be in 1...67108864, found 0"), ("n_inner", 2.5, "'n_inner' must be an integer, found 2.5"),
        ]
        for (k, v, m) in cases {
            var c = original; c[k] = v
            try JSONSerialization.data(withJSONObject: c).write(to: cfgURL)
            expect("\(k) = \(v)", { try CheckpointLoader.load(dir) }) { $0 == .badConfig(file: cfgURL.path, m) }
        }
        for (k, v) in [("bos_token_id", 64), ("eos_token_id", -1)] {
            var c = original; c[k] = v
            try JSONSerialization.data(withJSONObject: c).write(to: cfgURL)
            do { _ = try CheckpointLoader.load(dir); XCTFail("\(k) = \(v) loaded") } catch {
                XCTAssertTrue("\(error)".contains("is outside the vocabulary (0..<64)"), "\(error)")
            }
        }
        XCTAssertEqual(cases.count + 2, 12)
    }

    // MARK: class 4: layer and rank files that are swapped, or disagree

    func testSwappedDeepSpeedFilesAreRefused() throws {
        let dir = try write(.random(config: Self.cfg, seed: 3, std: 0.1), .deepspeed, tp: 2, pp: 2)
        let tag = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasPrefix("global_step") })
        let td = dir.appendingPathComponent(tag)
        XCTAssertNoThrow(try CheckpointLoader.load(dir))
        let pairs = [("layer_02-model_00-model_states.pt", "layer_03-model_00-model_states.pt"),
                     ("layer_02-model_00-model_states.pt", "layer_02-model_01-model_states.pt"),
                     ("layer_03-model_01-model_states.pt", "layer_02-model_00-model_states.pt"),
                     ("mp_rank_00_model_states.pt", "mp_rank_01_model_states.pt")]
        for (a, b) in pairs {
            let ua = td.appendingPathComponent(a), ub = td.appendingPathComponent(b), tmp = td.appendingPathComponent("swap")
            try FileManager.default.moveItem(at: ua, to: tmp); try FileManager.default.moveItem(at: ub, to: ua); try FileManager.default.moveItem(at: tmp, to: ub)
            expect("\(a) <-> \(b)", { try CheckpointLoader.load(dir) }) {
                guard case .rankMismatch(let files, let m) = $0 else { return false }
                return [ua.path, ub.path].contains(files[0]) && m.contains("swapped or renamed")
            }
            try FileManager.default.moveItem(at: ua, to: tmp); try FileManager.default.moveItem(at: ub, to: ua); try FileManager.default.moveItem(at: tmp, to: ub)
        }
        XCTAssertNoThrow(try CheckpointLoader.load(dir))
        XCTAssertEqual(pairs.count, 4)
    }

    func testRanksThatDisagreeAreNamed() throws {
        // saved global ranks that do not match their folders (conversion tools write 0 everywhere: no check)
        typealias Saved = (rank: Int?, t: Int, p: Int, file: String)
        let grid: [Saved] = [(0, 0, 0, "a"), (1, 1, 0, "b"), (2, 0, 1, "c"), (3, 1, 1, "d")]
        XCTAssertNoThrow(try MegatronLegacyAdapter.checkSavedRanks(grid, tp: 2, pp: 2, world: 4))
        XCTAssertNoThrow(try MegatronLegacyAdapter.checkSavedRanks(grid.map { (0, $0.t, $0.p, $0.file) }, tp: 2, pp: 2, world: 4))
        var swapped = grid; swapped[0].rank = 1; swapped[1].rank = 0
        XCTAssertThrowsError(try MegatronLegacyAdapter.checkSavedRanks(swapped, tp: 2, pp: 2, world: 4)) { e in
            guard case .rankMismatch(let f, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, ["a", "b"])
        }
        // data parallel 2: stage 1 starts at global rank 4
        let dp: [Saved] = [(0, 0, 0, "a"), (1, 1, 0, "b"), (4, 0, 1, "c"), (5, 1, 1, "d")]
        XCTAssertNoThrow(try MegatronLegacyAdapter.checkSavedRanks(dp, tp: 2, pp: 2, world: 8))
        XCTAssertThrowsError(try MegatronLegacyAdapter.checkSavedRanks(dp, tp: 2, pp: 2, world: 4))
        // args that must agree across ranks
        let a = PickleValue.dict(PickleDict(items: [(.string("hidden_size"), .int(16)), (.string("num_layers"), .int(2))]))
        let b = PickleValue.dict(PickleDict(items: [(.string("hidden_size"), .int(32)), (.string("num_layers"), .int(2))]))
        XCTAssertNil(MegatronArgs.disagreement(a, a))
        XCTAssertEqual(MegatronArgs.disagreement(a, b), "'hidden_size' is 16 in one and 32 in the other")
    }

    // MARK: class 5: DeepSpeed `latest` names a folder inside the save, nothing else

    func testLatestCannotLeaveTheSave() throws {
        let dir = try write(.random(config: Self.cfg, seed: 3, std: 0.1), .deepspeed, tp: 1, pp: 2)
        let latest = dir.appendingPathComponent("latest")
        let tags = ["../outside", "..", ".", "/etc", "a/b", "x\u{1B}[2J", "\u{7}"]
        for t in tags {
            try Data(t.utf8).write(to: latest)
            expect(t.debugDescription, { try CheckpointLoader.load(dir) }) {
                guard case .badConfig(let f, let m) = $0 else { return false }
                return f == latest.path && m.hasPrefix("expected the name of a tag folder inside") && !m.contains("\u{1B}") && !m.contains("\u{7}")
            }
        }
        XCTAssertEqual(tags.count, 7)
    }
}

/// The args CheckpointWriter saves for a config (what a Megatron save of it records).
enum MegatronWriterArgs {
    static func fields(_ c: ModelConfig) -> [(String, TorchValue)] {
        [("num_layers", .int(c.numLayers)), ("hidden_size", .int(c.hiddenSize)), ("num_attention_heads", .int(c.numHeads)),
         ("ffn_hidden_size", .int(c.ffnSize)), ("max_position_embeddings", .int(c.maxPositions)), ("orig_vocab_size", .int(c.vocabSize)),
         ("tensor_model_parallel_size", .int(1)), ("pipeline_model_parallel_size", .int(1)), ("openai_gelu", .bool(true))]
    }
}

extension HostileInputTests {
    /// A tokenizer smaller than the vocabulary a Megatron save records no longer trims it (an HF save of
    /// the same weights keeps every row): the recorded size wins and the difference is reported.
    func testTokenizerSizeDoesNotTrimARecordedVocabulary() throws {
        let ck = CanonicalCheckpoint.random(config: Self.cfg, seed: 3, std: 0.1)
        let meg = try write(ck, .megatron, tp: 2), hf = try write(ck, .hf)
        let r = try CheckpointLoader.loadReport(meg, options: LoadOptions(vocabSize: 50))
        XCTAssertEqual(r.checkpoint.config.vocabSize, 64)
        XCTAssertEqual(r.checkpoint.tensors["embedding.word.weight"], try CheckpointLoader.load(hf).tensors["embedding.word.weight"])
        XCTAssertTrue(r.problems.contains("the tokenizer has 50 tokens, the checkpoint records a vocabulary of 64: all 64 rows are kept (as for an HF save of the same weights)"), "\(r.problems)")
    }
}
