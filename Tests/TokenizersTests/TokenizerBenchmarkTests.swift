// Encode throughput on tinyshakespeare (skipped unless TURING_BENCH=1; meaningful only with -c release).
// Prints MB/s for warm (cached) and cold (cache cleared) runs; compare with scripts/bench_tokenizer.py.

import Foundation
import XCTest
@testable import Tokenizers

final class TokenizerBenchmarkTests: XCTestCase {
    func testTinyShakespeareThroughput() throws {
        guard ProcessInfo.processInfo.environment["TURING_BENCH"] == "1" else { throw XCTSkip("set TURING_BENCH=1") }
        let path = try TestData.shared("tinyshakespeare/input.txt")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let tok = try TestData.gpt2()
        let warm = TokenizerBenchmark.run(tokenizer: tok, text: text, repeats: 5)
        var coldBest = 0.0
        for _ in 0..<3 {
            tok.clearCache()
            coldBest = max(coldBest, TokenizerBenchmark.run(tokenizer: tok, text: text, repeats: 1, warmup: false).mbPerSecond)
        }
        let llama = try Llama2cTokenizer(path: try TestData.shared("models/stories260K/tok512.bin"))
        let small = String(text.prefix(20_000))
        let l = TokenizerBenchmark.run(tokenizer: llama, text: small, repeats: 1)
        print(String(format: "BENCH gpt2 tinyshakespeare %d bytes -> %d tokens: warm %.2f MB/s, cold-cache %.2f MB/s; llama2c tok512 (20 KB) %.3f MB/s",
                     text.utf8.count, warm.tokens, warm.mbPerSecond, coldBest, l.mbPerSecond))
        // Mixed-script text: the fixture corpus (minus the shakespeare case) joined by "\n", repeated to >= 1 MB.
        let root = try TestData.json(try TestData.fixture("gpt2_hf_ids.json")) as? [String: Any]
        let unit = TestData.cases(root?["gpt2"]).dropLast().map(\.0).joined(separator: "\n") + "\n"
        let mixed = String(repeating: unit, count: 1_000_000 / unit.utf8.count + 1)
        let m = TokenizerBenchmark.run(tokenizer: tok, text: mixed, repeats: 3)
        tok.clearCache()
        let mCold = TokenizerBenchmark.run(tokenizer: tok, text: mixed, repeats: 1, warmup: false)
        print(String(format: "BENCH gpt2 mixed-script corpus %d bytes -> %d tokens: warm %.2f MB/s, cold-cache %.2f MB/s",
                     mixed.utf8.count, m.tokens, m.mbPerSecond, mCold.mbPerSecond))
        XCTAssertEqual(warm.tokens, 338025)   // HF GPT2TokenizerFast counts (scripts/bench_tokenizer.py)
        XCTAssertEqual(m.tokens, 417088)
        XCTAssertGreaterThan(warm.mbPerSecond, 0)
    }
}
