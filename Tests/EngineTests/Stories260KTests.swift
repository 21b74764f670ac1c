import XCTest
import TestSupport
import Foundation
@testable import Engine
@testable import Checkpoints
import Model

/// Where ../shared/data lives: $TURING_SHARED_DATA, else next to the package.
func sharedData() -> URL { Paths.sharedData }

final class Stories260KTests: XCTestCase {
    /// run.c -t 0.0 from BOS: 256 steps (256 tokens printed), greedy, stop on BOS; compare the ids' text with stories260K.md.
    func testGreedyStoryMatchesLlama2c() throws {
        let dir = sharedData().appendingPathComponent("models/stories260K")
        let bin = dir.appendingPathComponent("stories260K.bin")
        guard FileManager.default.fileExists(atPath: bin.path) else { throw XCTSkip("shared data not found: \(bin.path)") }
        let ckpt = try Llama2cAdapter.load(bin)
        let model = DecoderModel(weights: try DecoderWeights(ckpt))
        let ids = try Generator(model: model).generate([GenerationRequest(prompt: [1], maxTokens: 256, stopTokens: [1])])[0]
        let vocab = try readLlama2cVocab(dir.appendingPathComponent("tok512.bin"))
        var bytes: [UInt8] = []
        var prev = 1
        for t in ids {
            var piece = Array(vocab[t].utf8)
            if prev == 1 && piece.first == 0x20 { piece.removeFirst() }
            let s = vocab[t]
            if s.count == 6, s.hasPrefix("<0x"), s.hasSuffix(">"), let b = UInt8(s.dropFirst(3).prefix(2), radix: 16) { piece = [b] }
            bytes += piece; prev = t
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let md = try String(contentsOf: dir.appendingPathComponent("stories260K.md"), encoding: .utf8)
        let block = md.components(separatedBy: "$ ./run stories260K/stories260K.bin -z stories260K/tok512.bin -t 0.0\n")[1]
            .components(separatedBy: "\n```")[0]
        XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), block.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

func readLlama2cVocab(_ url: URL) throws -> [String] {
    let d = try Data(contentsOf: url)
    return d.withUnsafeBytes { raw in
        var off = 4
        var out: [String] = []
        while off + 8 <= d.count {
            off += 4
            let len = Int(raw.loadUnaligned(fromByteOffset: off, as: Int32.self)); off += 4
            out.append(String(decoding: raw[off..<(off + len)], as: UTF8.self)); off += len
        }
        return out
    }
}
