// Streaming at the checkpoint boundary: writers fed by a `TensorSource` (a random model never held
// whole) write what the whole-checkpoint writers write; HF folders visited a tensor at a time
// (`LoadOptions.visit`) hand over exactly the tensors a whole load returns; and `DecoderWeightsBuilder`
// fed by a visit (HF, Megatron TP 2 x PP 2) builds the weights a whole load builds, bit for bit.

import Foundation
import XCTest
import TensorCore
import Model
@testable import Checkpoints

final class StreamedLoadTests: XCTestCase {
    static let llama = ModelConfig(vocabSize: 37, hiddenSize: 16, numLayers: 4, numHeads: 4, numKVHeads: 2, ffnSize: 24,
                                   maxPositions: 32, norm: .rmsnorm, activation: .swiglu, positions: .rope,
                                   tiedEmbeddings: false, linearBias: false)

    final class Seen: @unchecked Sendable {
        var config: ModelConfig?, names: [String] = [], tensors: [String: Tensor] = [:]
        var builder: DecoderWeightsBuilder?
        var dtype: ComputeDType = .float32
    }

    /// Visit `url` (canonical target): the config first, then every tensor, kept, and fed to a builder.
    func visit(_ url: URL, dtype: ComputeDType = .float32) throws -> Seen {
        let seen = Seen(); seen.dtype = dtype
        var o = LoadOptions()
        o.visitConfig = { c in
            XCTAssertTrue(seen.names.isEmpty, "config after a tensor")
            seen.config = c; seen.builder = try DecoderWeightsBuilder(config: c, dtype: seen.dtype)
        }
        o.visit = { n, t in
            XCTAssertNil(seen.tensors[n], "\(n) visited twice")
            seen.names.append(n); seen.tensors[n] = t
            try seen.builder!.add(n, t)
        }
        let r = try CheckpointLoader.loadReport(url, options: o)
        XCTAssertTrue(r.checkpoint.tensors.isEmpty, "a visit returns the config only")
        XCTAssertEqual(r.checkpoint.config, seen.config)
        return seen
    }

    func assertSameWeights(_ a: DecoderWeights, _ b: DecoderWeights, file: StaticString = #filePath, line: UInt = #line) {
        func bits(_ m: WeightMatrix) -> [UInt32] {
            switch m.storage { case .f32(let x): return x.map(\.bitPattern); case .bf16(let x): return x.map(UInt32.init) }
        }
        XCTAssertEqual(a.matrices.count, b.matrices.count, file: file, line: line)
        for (i, (x, y)) in zip(a.matrices, b.matrices).enumerated() {
            XCTAssertEqual([x.rows, x.cols], [y.rows, y.cols], "matrix \(i)", file: file, line: line)
            XCTAssertEqual(x.dtype, y.dtype, file: file, line: line)
            XCTAssertTrue(bits(x) == bits(y), "matrix \(i) differs", file: file, line: line)
        }
        func arrays(_ w: DecoderWeights) -> [[Float]?] {
            [w.positionEmbedding, w.finalNormW, w.finalNormB] + w.layers.flatMap { [$0.norm1W, $0.norm1B, $0.norm2W, $0.norm2B, $0.qkvB, $0.outB, $0.fc1B, $0.fc2B] }
        }
        XCTAssertTrue(zip(arrays(a), arrays(b)).allSatisfy { $0?.map(\.bitPattern) == $1?.map(\.bitPattern) }, "norms/biases differ", file: file, line: line)
        XCTAssertEqual(a.parameterCount, b.parameterCount, file: file, line: line)
    }

    func testHFVisitHandsOverWhatALoadReturnsAndBuildsTheSameWeights() throws {
        let url = try Fixtures.dir("gpt2-tiny")
        let whole = try CheckpointLoader.load(url)
        for dtype in ComputeDType.allCases {
            let seen = try visit(url, dtype: dtype)
            XCTAssertEqual(Set(seen.names), Set(whole.tensors.keys))
            assertBitwiseEqual(CanonicalCheckpoint(config: whole.config, tensors: seen.tensors, format: "hf"), whole)
            XCTAssertEqual(seen.names.first, "embedding.word.weight")
            XCTAssertTrue(seen.names.firstIndex(of: "layers.1.norm1.weight")! > seen.names.firstIndex(of: "layers.0.mlp.fc2.bias")!, "layer order")
            assertSameWeights(try seen.builder!.finish(), try DecoderWeights(whole, dtype: dtype))
        }
    }

    func testMegatronTP2PP2VisitBuildsTheWeightsOfAWholeLoad() throws {
        let url = try Fixtures.dir("megatron-legacy-tp2-pp2")
        let whole = try CheckpointLoader.load(url)
        for dtype in ComputeDType.allCases {
            let seen = try visit(url, dtype: dtype)
            assertBitwiseEqual(CanonicalCheckpoint(config: whole.config, tensors: seen.tensors, format: "m"), whole)
            assertSameWeights(try seen.builder!.finish(), try DecoderWeights(whole, dtype: dtype))
        }
    }

    /// A random source written as an HF folder and as a Megatron TP 2 x PP 2 save reads back as its
    /// tensors (f32: exactly; bf16: each value rounded once), the same as writing the whole checkpoint.
    func testWritersFedByARandomSourceReadBackItsTensors() throws {
        let src = RandomTensorSource(config: Self.llama, seed: 21, std: 0.3)
        let whole = try CanonicalCheckpoint(config: Self.llama, tensors: Dictionary(uniqueKeysWithValues:
            CanonicalSchema.shapes(for: Self.llama).map { ($0.0, try src.tensor($0.0)) }), format: "random")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (target, tp, pp) in [(ConvertTarget.hf, 1, 1), (.megatron, 2, 2)] {
            for dtype in [StorageDType.float32, .bfloat16] {
                let a = dir.appendingPathComponent("\(target)-\(dtype)-streamed"), b = dir.appendingPathComponent("\(target)-\(dtype)-whole")
                try CheckpointWriter.write(source: src, to: a, target: target, options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault), dtype: dtype))
                try CheckpointWriter.write(whole, to: b, target: target, options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault), dtype: dtype))
                let got = try CheckpointLoader.load(a, options: LoadOptions(vocabSize: Self.llama.vocabSize))
                XCTAssertEqual(got.config.numLayers, 4)
                assertBitwiseEqual(got, whole, bf16: dtype == .bfloat16)
                assertBitwiseEqual(try CheckpointLoader.load(b, options: LoadOptions(vocabSize: Self.llama.vocabSize)), got)
            }
        }
    }
}

extension StreamedLoadTests {
    /// A visitor's error ends the HF load with that error; no tensor is visited after it.
    func testHFVisitorErrorEndsTheLoad() throws {
        let url = try Fixtures.dir("gpt2-tiny")
        struct Stop: Error {}
        final class Count: @unchecked Sendable { var n = 0 }
        let count = Count()
        var o = LoadOptions()
        o.visit = { _, _ in count.n += 1; if count.n == 3 { throw Stop() } }
        XCTAssertThrowsError(try CheckpointLoader.loadReport(url, options: o)) { XCTAssertTrue($0 is Stop, "\($0)") }
        XCTAssertEqual(count.n, 3)
    }
}
