// Writers round trip: TorchWriter files decode with our own TorchFile to the values written; Megatron
// legacy, DeepSpeed and HF outputs at several TP x PP read back through the adapters to canonical
// tensors bitwise equal to the source (bf16: equal to the source rounded to bf16). Python-side checks
// (torch.load, transformers logits) live in scripts/check_convert.py.

import XCTest
import Foundation
@testable import Checkpoints
import Model
import TensorCore

final class ConvertTests: XCTestCase {
    func testTorchWriterRoundTripsValuesAndTensors() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let a = Tensor(shape: [3, 5], data: (0..<15).map { Float($0) * 0.37 - 2 })
        let b = Tensor(shape: [4], data: [1.5, -0.25, 3e-3, 65504])
        let root: TorchValue = .dict([
            ("args", .namespace([("hidden_size", .int(64)), ("big", .int(5_000_000_000)), ("neg", .int(-7)),
                                 ("eps", .float(1e-5)), ("name", .string("gpt ✓")), ("flag", .bool(true)),
                                 ("none", .none), ("params_dtype", .dtype(.bfloat16))])),
            ("list", .list([.int(1), .int(300), .int(70000)])), ("tuple", .tuple([.int(1), .int(2), .int(3), .int(4)])),
            ("model", .orderedDict([("a", .tensor(TensorPayload(a))), ("b", .tensor(TensorPayload(b, dtype: .bfloat16)))])),
        ])
        let url = dir.appendingPathComponent("model_optim_rng.pt")
        try TorchWriter.save(root, to: url)
        let tf = try TorchFile(url: url)
        XCTAssertEqual(tf.prefix, "model_optim_rng")
        XCTAssertEqual(String(decoding: try tf.archive.payload("model_optim_rng/version"), as: UTF8.self), "3\n")
        XCTAssertEqual(String(decoding: try tf.archive.payload("model_optim_rng/byteorder"), as: UTF8.self), "little")
        for e in tf.archive.entries where e.name.contains("/data/") {
            XCTAssertEqual(try tf.archive.payloadRange(of: e).lowerBound % 64, 0, "\(e.name) payload is not 64-byte aligned")
        }
        let v = try tf.root()
        let args = MegatronArgs(v["args"], file: url.path)
        XCTAssertEqual(args.int("hidden_size"), 64); XCTAssertEqual(args.int("big"), 5_000_000_000); XCTAssertEqual(args.int("neg"), -7)
        XCTAssertEqual(args.double("eps"), 1e-5); XCTAssertEqual(args.string("name"), "gpt ✓"); XCTAssertEqual(args.bool("flag"), true)
        XCTAssertNil(args.raw("none"))
        if case .global(let g)? = args.raw("params_dtype") { XCTAssertEqual(g, "torch.bfloat16") } else { XCTFail("params_dtype: \(String(describing: args.raw("params_dtype")))") }
        let flat = Dictionary(uniqueKeysWithValues: v.flattenTensors())
        XCTAssertEqual(try flat["model.a"]!.materialize(), a)
        XCTAssertEqual(flat["model.b"]!.dtype, .bfloat16)
        XCTAssertEqual(try flat["model.b"]!.materialize(), bf16Rounded(b))
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    func testZip64RecordsReadBack() throws {
        // Every entry, offset and the directory forced through ZIP64 records, as >4 GiB shards need.
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let a = Tensor(shape: [64, 33], data: (0..<(64 * 33)).map { Float($0) })
        let url = dir.appendingPathComponent("big.pt")
        try TorchWriter.save(.dict([("w", .tensor(TensorPayload(a))), ("n", .int(3))]), to: url, zip64Threshold: 1)
        let tf = try TorchFile(url: url)
        XCTAssertEqual(tf.archive.entries.count, 4)
        let v = try tf.root()
        XCTAssertEqual(try Dictionary(uniqueKeysWithValues: v.flattenTensors())["w"]!.materialize(), a)
        XCTAssertEqual(v["n"]?.intValue, 3)
        // The 32-bit fields really are saturated (so the ZIP64 path was taken).
        let d = try Data(contentsOf: url)
        XCTAssertEqual(d.le32(d.count - 22), 0x0605_4B50)
        XCTAssertEqual(d.le32(d.count - 22 + 16), 0xFFFF_FFFF)
        XCTAssertEqual(d.le32(d.count - 22 - 20), 0x0706_4B50)
        // For a manual torch.load / zipfile check of the ZIP64 form (see scripts/check_convert.py's notes).
        if let keep = ProcessInfo.processInfo.environment["TURING_KEEP_ZIP64"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: url, to: URL(fileURLWithPath: keep))
        }
    }

    static let gpt = ModelConfig(vocabSize: 1000, hiddenSize: 64, numLayers: 4, numHeads: 4, maxPositions: 128, activation: .geluTanh)
    static let gptUntied = ModelConfig(vocabSize: 333, hiddenSize: 32, numLayers: 3, numHeads: 4, maxPositions: 16, activation: .gelu, tiedEmbeddings: false)
    static let llama = ModelConfig(vocabSize: 301, hiddenSize: 48, numLayers: 4, numHeads: 4, numKVHeads: 2, headDim: 16, ffnSize: 64,
                                   maxPositions: 64, norm: .rmsnorm, normEpsilon: 1e-6, activation: .swiglu, positions: .rope,
                                   ropeTheta: 500000, tiedEmbeddings: false, linearBias: false)

    func roundTrip(_ c: ModelConfig, _ target: ConvertTarget, tp: Int, pp: Int, dtype: StorageDType = .float32, iteration: Int? = nil,
                   line: UInt = #line) throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let src = CanonicalCheckpoint.random(config: c, seed: UInt64(tp * 10 + pp))
        let out = dir.appendingPathComponent("out")
        try CheckpointWriter.write(src, to: out, target: target, options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault), dtype: dtype, iteration: iteration))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out"], "temporary directory left behind", line: line)
        let r = try CheckpointLoader.loadReport(out)
        XCTAssertEqual(r.format, target == .megatron ? "megatron-legacy" : target.rawValue, line: line)
        XCTAssertEqual(r.tensorParallel, tp, line: line); XCTAssertEqual(r.pipelineParallel, pp, line: line)
        XCTAssertEqual(r.problems, [], line: line)
        var want = c; want.bosToken = nil; want.eosToken = nil
        var got = r.checkpoint.config; got.bosToken = nil; got.eosToken = nil
        XCTAssertEqual(got, want, line: line)
        assertBitwiseEqual(r.checkpoint, src, bf16: dtype == .bfloat16, line: line)
        if target != .hf { XCTAssertEqual(r.iteration, iteration ?? 0, line: line) }
    }

    func testMegatronLegacyRoundTripsEveryLayout() throws {
        for (tp, pp) in [(1, 1), (2, 1), (4, 2), (1, 4), (2, 3)] { try roundTrip(Self.gpt, .megatron, tp: tp, pp: pp) }
        try roundTrip(Self.gpt, .megatron, tp: 2, pp: 2, iteration: 3000)
        try roundTrip(Self.gpt, .megatron, tp: 2, pp: 2, dtype: .bfloat16)
        try roundTrip(Self.gptUntied, .megatron, tp: 4, pp: 3)
        for (tp, pp) in [(1, 1), (2, 2)] { try roundTrip(Self.llama, .megatron, tp: tp, pp: pp) }
    }

    func testMegatronRankFilesMatchSplitAndLayout() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let src = CanonicalCheckpoint.random(config: Self.gpt)
        try CheckpointWriter.write(src, to: dir.appendingPathComponent("o"), target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 2, pp: 2, vocab: .megatronDefault)))
        let it = dir.appendingPathComponent("o/release")
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("o/latest_checkpointed_iteration.txt"), encoding: .utf8), "release\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: it.path).sorted(), ["mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"])
        let last = try TorchFile.load(it.appendingPathComponent("mp_rank_01_001/model_optim_rng.pt"))
        let flat = Dictionary(uniqueKeysWithValues: last["model"]!.flattenTensors())
        // Local layer numbers, head copy on the last stage, vocab padded to 128·TP and split.
        XCTAssertNotNil(flat["language_model.encoder.layers.1.mlp.dense_4h_to_h.weight"])
        XCTAssertNil(flat["language_model.encoder.layers.2.mlp.dense_4h_to_h.weight"])
        let split = try src.split(ParallelLayout(tp: 2, vocab: .megatronDefault))
        XCTAssertEqual(try flat["word_embeddings_for_head.weight"]!.materialize(), split[1]["embedding.word.weight"])
        XCTAssertEqual(try flat["language_model.encoder.layers.0.mlp.dense_4h_to_h.weight"]!.materialize(), split[1]["layers.2.mlp.fc2.weight"])
        let args = MegatronArgs(last["args"], file: "")
        XCTAssertEqual(args.int("padded_vocab_size"), 1024); XCTAssertEqual(args.int("orig_vocab_size"), 1000)
        XCTAssertEqual(last["checkpoint_version"]?.doubleValue, 3.0)
    }

    /// The last stage's tied-head copy is checked against stage 0's word embedding on every load path
    /// (f32 read straight from the file, bf16 decoded; canonical and re-split): one changed element of
    /// a real row is reported, stage 0's copy is used.
    func testDriftedTiedHeadCopyIsReported() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let src = CanonicalCheckpoint.random(config: Self.gpt)
        let drift = "word_embeddings_for_head differs"
        // the bytes are edited in place below: the zip CRC check would (rightly) refuse them first
        ZipArchive.verifyChecksums = false; defer { ZipArchive.verifyChecksums = true }
        for (dtype, width) in [(StorageDType.float32, 4), (.bfloat16, 2)] {
            let out = dir.appendingPathComponent("o-\(dtype.rawValue)")
            try CheckpointWriter.write(src, to: out, target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 2, pp: 2, vocab: .megatronDefault), dtype: dtype))
            func reports() throws -> [Bool] {
                let problems = try [CheckpointLoader.loadReport(out).problems] + [1, 2, 4].map { try CheckpointLoader.loadSplit(out, layout: ParallelLayout(tp: $0, vocab: .megatronDefault)).problems }
                return problems.map { $0.contains { $0.contains(drift) } }
            }
            XCTAssertEqual(try reports(), [false, false, false, false], "\(dtype)")
            // Canonical row 515 (rank 1's part, row 3), column 2: change its high byte.
            let f = out.appendingPathComponent("release/mp_rank_01_001/model_optim_rng.pt")
            let tf = try TorchFile(url: f)
            let ref = Dictionary(uniqueKeysWithValues: try tf.root()["model"]!.flattenTensors())["word_embeddings_for_head.weight"]!
            let e = try XCTUnwrap(tf.archive.entry(named: tf.prefix + "/data/" + ref.storage.key))
            let at = try tf.archive.payloadRange(of: e).lowerBound + (ref.offset + 3 * Self.gpt.hiddenSize + 2) * width + width - 1
            var bytes = try Data(contentsOf: f)
            bytes[at] ^= 0x01
            try bytes.write(to: f)
            XCTAssertEqual(try reports(), [true, true, true, true], "\(dtype)")
            let loaded = try CheckpointLoader.load(out)
            XCTAssertEqual(loaded.tensors["embedding.word.weight"], dtype == .float32 ? src.tensors["embedding.word.weight"]
                                                                                         : bf16Rounded(src.tensors["embedding.word.weight"]!))
        }
    }

    /// A bad record found while the pieces are being written (on the loader's threads) is the same typed
    /// error naming the file and record, on every load path; nothing is returned.
    func testBadRecordDuringPieceWritingIsATypedError() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o")
        try CheckpointWriter.write(CanonicalCheckpoint.random(config: Self.gpt), to: out, target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 2, pp: 2, vocab: .megatronDefault)))
        let f = out.appendingPathComponent("release/mp_rank_01_001/model_optim_rng.pt")
        let tf = try TorchFile(url: f)
        let ref = Dictionary(uniqueKeysWithValues: try tf.root()["model"]!.flattenTensors())["language_model.encoder.layers.1.mlp.dense_4h_to_h.weight"]!
        let record = tf.prefix + "/data/" + ref.storage.key
        let e = try XCTUnwrap(tf.archive.entry(named: record))
        var bytes = try Data(contentsOf: f)
        bytes[e.localHeaderOffset + 3] = 0x05   // "PK\u{3}\u{4}" -> "PK\u{3}\u{5}": found only when the record is read
        try bytes.write(to: f)
        for load in [{ _ = try CheckpointLoader.load(out) }, { _ = try CheckpointLoader.loadSplit(out, layout: ParallelLayout(tp: 2, vocab: .megatronDefault)) }, { _ = try CheckpointLoader.loadSplit(out, layout: ParallelLayout(tp: 4, vocab: .megatronDefault)) }] {
            XCTAssertThrowsError(try load()) { err in
                guard case .badZip(let file, let why)? = err as? CheckpointError else { return XCTFail("\(err)") }
                XCTAssertTrue(file.hasSuffix("mp_rank_01_001/model_optim_rng.pt"), file)
                XCTAssertTrue(why.contains(record), why)
            }
        }
    }

    /// `LoadOptions.rank`: one engine rank's tensors, exactly those of the full re-split that rank uses
    /// (its layers; embeddings on the first stage, the tied embedding on the last too; final norm and
    /// head on the last), whatever the saved layout; Megatron and DeepSpeed saves.
    func testOneEngineRankLoadsOnlyItsOwnShard() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        for (cfg, target, tp, pp) in [(Self.gpt, ConvertTarget.megatron, 2, 2), (Self.llama, .megatron, 1, 2), (Self.gptUntied, .deepspeed, 2, 2)] {
            let out = dir.appendingPathComponent("\(target.rawValue)-\(cfg.vocabSize)")
            try CheckpointWriter.write(CanonicalCheckpoint.random(config: cfg), to: out, target: target, options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault)))
            for (etp, epp) in [(2, 2), (2, 3), (1, 3)] where cfg.numKVHeads % etp == 0 {
                let layout = ParallelLayout(tp: etp, pp: epp)
                let full = try CheckpointLoader.loadSplit(out, layout: layout).shards!
                let stages = try layout.stageLayers(numLayers: cfg.numLayers)
                for t in 0..<etp { for p in 0..<epp {
                    var o = LoadOptions(); o.rank = layout.rank(tpRank: t, stage: p)
                    let r = try CheckpointLoader.loadSplit(out, layout: layout, options: o)
                    XCTAssertEqual(r.shards?.count, 1)
                    let mine = r.shards![0]
                    let first = p == 0, last = p == epp - 1
                    let expected = full[t].filter { name, _ in
                        if name.hasPrefix("layers."), let i = Int(name.split(separator: ".")[1]) { return stages[p].contains(i) }
                        if name == "embedding.word.weight" { return first || (last && cfg.tiedEmbeddings) }
                        if name == "embedding.position.weight" { return first }
                        return last
                    }
                    XCTAssertEqual(mine, expected, "\(target) saved TP \(tp) x PP \(pp), engine rank (TP \(t), stage \(p)) of TP \(etp) x PP \(epp)")
                    XCTAssertNoThrow(try DecoderWeights(config: r.checkpoint.config, rankTensors: mine,
                                                        shard: try RankPlace(layout: layout, tpRank: t, stage: p, numLayers: cfg.numLayers)))
                } }
                var o = LoadOptions(); o.rank = layout.worldSize
                XCTAssertThrowsError(try CheckpointLoader.loadSplit(out, layout: layout, options: o)) {
                    XCTAssertTrue("\($0)".contains("rank \(layout.worldSize) is outside \(layout)"), "\($0)")
                }
            }
        }
    }

    /// The weights hash read a layer at a time equals the hash of the whole load (Megatron f32 and bf16,
    /// DeepSpeed; tied and untied), and `LoadOptions.visit` hands over every canonical tensor, in name
    /// order, equal to the whole load's.
    func testWeightsHashReadALayerAtATimeEqualsTheWholeLoad() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        for (cfg, target, dtype) in [(Self.gpt, ConvertTarget.megatron, StorageDType.float32), (Self.gpt, .megatron, .bfloat16),
                                     (Self.gptUntied, .deepspeed, .float32), (Self.llama, .megatron, .float32)] {
            let out = dir.appendingPathComponent("\(target.rawValue)-\(cfg.vocabSize)-\(dtype.rawValue)")
            try CheckpointWriter.write(CanonicalCheckpoint.random(config: cfg), to: out, target: target, options: WriteOptions(layout: ParallelLayout(tp: 2, pp: 2, vocab: .megatronDefault), dtype: dtype))
            let whole = try CheckpointLoader.load(out)
            XCTAssertEqual(try CheckpointLoader.weightsHash(out), whole.weightsHash, "\(out.lastPathComponent)")
            final class Seen: @unchecked Sendable { var names: [String] = []; var equal = true }
            let seen = Seen()
            var o = LoadOptions()
            o.visit = { name, t in seen.names.append(name); if whole.tensors[name] != t { seen.equal = false } }
            XCTAssertTrue(try CheckpointLoader.loadReport(out, options: o).checkpoint.tensors.isEmpty)
            XCTAssertEqual(seen.names, whole.tensors.keys.sorted(), out.lastPathComponent)
            XCTAssertTrue(seen.equal, out.lastPathComponent)
        }
    }

    func testDeepSpeedRoundTrips() throws {
        try roundTrip(Self.gpt, .deepspeed, tp: 2, pp: 2, iteration: 3000)
        try roundTrip(Self.gptUntied, .deepspeed, tp: 1, pp: 1)
        try roundTrip(Self.llama, .deepspeed, tp: 2, pp: 4)
    }

    func testHFRoundTrips() throws {
        try roundTrip(Self.gpt, .hf, tp: 1, pp: 1)
        try roundTrip(Self.gptUntied, .hf, tp: 1, pp: 1, dtype: .bfloat16)
        try roundTrip(Self.llama, .hf, tp: 1, pp: 1)
    }

    func testWritersRejectImpossibleLayouts() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let src = CanonicalCheckpoint.random(config: Self.gpt)
        XCTAssertThrowsError(try CheckpointWriter.write(src, to: dir.appendingPathComponent("a"), target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 3, vocab: .megatronDefault)))) {
            XCTAssertTrue("\($0)".contains("--tp 3"), "\($0)")
        }
        XCTAssertThrowsError(try CheckpointWriter.write(src, to: dir.appendingPathComponent("b"), target: .megatron, options: WriteOptions(layout: ParallelLayout(pp: 5, vocab: .megatronDefault))))
        XCTAssertThrowsError(try CheckpointWriter.write(src, to: dir.appendingPathComponent("c"), target: .hf, options: WriteOptions(layout: ParallelLayout(tp: 2, vocab: .megatronDefault))))
        XCTAssertThrowsError(try CheckpointWriter.write(src, to: dir.appendingPathComponent("d"), target: .megatron, options: WriteOptions(iteration: 0))) {
            XCTAssertTrue("\($0)".contains("iteration must be >= 1"), "\($0)")
        }
        // a save holds one replica, its stages split evenly (Megatron's args record no other split)
        for (name, layout) in [("e", ParallelLayout(tp: 2, dp: 2, vocab: .megatronDefault)), ("f", ParallelLayout(pp: 2, layersPerStage: [1, 3], vocab: .megatronDefault))] {
            XCTAssertThrowsError(try CheckpointWriter.write(src, to: dir.appendingPathComponent(name), target: .megatron, options: WriteOptions(layout: layout))) {
                XCTAssertTrue("\($0)".contains("a save holds one replica with evenly split stages; got \(layout)"), "\($0)")
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "failed writes must leave nothing behind")
    }

    func testFixtureConvertsBackBitwise() throws {
        let ref = try Fixtures.reference()
        let src = try CheckpointLoader.load(try Fixtures.dir("megatron-legacy-tp2-pp2"))
        assertBitwiseEqual(src, ref)
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try CheckpointWriter.write(src, to: dir.appendingPathComponent("m"), target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 4, pp: 1, vocab: .megatronDefault)))
        assertBitwiseEqual(try CheckpointLoader.load(dir.appendingPathComponent("m")), ref)
    }
}

final class ConvertReplaceTests: XCTestCase {
    func testReplaceSwapsOnlyAfterSuccessAndRefusesWithout() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o")
        let a = CanonicalCheckpoint.random(config: ConvertTests.gpt, seed: 1), b = CanonicalCheckpoint.random(config: ConvertTests.gpt, seed: 2)
        try CheckpointWriter.write(a, to: out, target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 2, vocab: .megatronDefault)))
        XCTAssertThrowsError(try CheckpointWriter.write(b, to: out, target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 2, vocab: .megatronDefault))))
        // A failing replacement leaves the old output intact.
        XCTAssertThrowsError(try CheckpointWriter.write(b, to: out, target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: 3, vocab: .megatronDefault)), replace: true))
        assertBitwiseEqual(try CheckpointLoader.load(out), a)
        try CheckpointWriter.write(b, to: out, target: .deepspeed, options: WriteOptions(layout: ParallelLayout(tp: 1, pp: 2, vocab: .megatronDefault)), replace: true)
        assertBitwiseEqual(try CheckpointLoader.load(out), b)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["o"])
    }
}
