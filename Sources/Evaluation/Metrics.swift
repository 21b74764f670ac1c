// Metrics: lm-eval 0.4.13's per-document metrics and their aggregation (api/task.py process_results,
// api/metrics.py).
//
// Contract: acc = [argmax lls == gold] (first maximum wins, as np.argmax); acc_norm divides each ll by the
// choice's length in Unicode code points; LAMBADA-style acc = every continuation token greedy; perplexity
// aggregates exp(-mean(ll)). Stderr of a mean is the sample standard deviation (n-1) over sqrt(n)
// (mean_stderr; nil for n < 2); stderr of perplexity is lm-eval's bootstrap: 100 chunks i = 0..99 of
// 1000 replicates, each `random.Random(i).choices(xs, k=n)`, sample stddev over the 100000 replicate
// perplexities. Sums run left to right as Python's sum() does.

import Foundation
import Tasks

public enum Metrics {
    public static func argmax(_ xs: [Double]) -> Int {
        var best = 0
        for i in xs.indices where xs[i] > xs[best] { best = i }
        return best
    }

    public static func mean(_ xs: [Double]) -> Double { pySum(xs) / Double(xs.count) }

    public static func sampleStddev(_ xs: [Double]) -> Double {
        let mu = mean(xs)
        return (pySum(xs.map { ($0 - mu) * ($0 - mu) }) / Double(xs.count - 1)).squareRoot()
    }

    public static func meanStderr(_ xs: [Double]) -> Double? {
        xs.count < 2 ? nil : sampleStddev(xs) / Double(xs.count).squareRoot()
    }

    public static func perplexity(_ lls: [Double]) -> Double { exp(-mean(lls)) }

    public static func bootstrapPerplexityStderr(_ lls: [Double], iters: Int = 100_000) -> Double? {
        guard lls.count >= 1, iters >= 2 else { return nil }
        let chunk = min(1000, iters)
        var reps: [Double] = []
        reps.reserveCapacity(iters)
        let n = lls.count
        for i in 0..<(iters / chunk) {
            var rng = PyRandom(seed: i)
            for _ in 0..<chunk {
                var s = 0.0
                for _ in 0..<n { s += lls[rng.choicesIndex(count: n)] }
                reps.append(exp(-(s / Double(n))))
            }
        }
        return sampleStddev(reps)
    }

    static func pySum(_ xs: [Double]) -> Double { var s = 0.0; for x in xs { s += x }; return s }
}
