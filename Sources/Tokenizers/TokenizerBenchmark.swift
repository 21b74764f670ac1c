// TokenizerBenchmark: encode throughput of any Tokenizer on one text.
// Contract: runs `encode` once to warm up (fills per-word caches, as a long-running server would), then times
// `repeats` further runs with a monotonic clock and reports the best run as MB/s (1 MB = 1e6 UTF-8 bytes).

import Foundation

public enum TokenizerBenchmark {
    public static func run(tokenizer: Tokenizer, text: String) -> (mbPerSecond: Double, tokens: Int) {
        run(tokenizer: tokenizer, text: text, repeats: 3)
    }

    public static func run(tokenizer: Tokenizer, text: String, repeats: Int, warmup: Bool = true) -> (mbPerSecond: Double, tokens: Int) {
        let bytes = Double(text.utf8.count)
        var tokens = warmup ? tokenizer.encode(text).count : 0
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            tokens = tokenizer.encode(text).count
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, dt)
        }
        return (bytes / 1e6 / max(best, 1e-9), tokens)
    }
}
