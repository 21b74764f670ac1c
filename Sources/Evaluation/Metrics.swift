// Metrics: lm-eval 0.4.13's per-document metrics and their aggregation (api/task.py process_results,
// api/metrics.py).
//
// Contract: acc = [argmax lls == gold] (first maximum wins, as np.argmax); acc_norm divides each ll by the
// choice's length in Unicode code points; LAMBADA-style acc = every continuation token greedy; perplexity
// aggregates exp(-mean(ll)). Stderr of a mean is the sample standard deviation (n-1) over sqrt(n)
// (mean_stderr; nil for n < 2); stderr of perplexity is lm-eval's bootstrap: 100 chunks i = 0..99 of
// 1000 replicates, each `random.Random(i).choices(xs, k=n)`, sample stddev over the 100000 replicate
// perplexities. Sums run left to right as Python's sum() does.
// generate_until: exact_match = [prediction == reference] after the options (regexes_to_ignore deleted, then
// lower-case with ignore_case,
// ASCII punctuation (Python's string.punctuation) deleted with ignore_punctuation); mean and mean stderr.
// loglikelihood_rolling: word_perplexity = exp(-Σll / Σwords), byte_perplexity = exp(-Σll / Σbytes),
// bits_per_byte = -Σll / Σbytes / ln 2 (weighted_mean); words = len(re.split(r"\s+", text)) (whitespace runs
// + 1, Python's str.isspace), bytes = UTF-8 length; lm-eval gives these no stderr ("N/A").

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

    // MARK: - generate_until

    public static func exactMatch(_ prediction: String, _ reference: String, _ o: ExactMatchOptions) -> Double {
        func norm(_ x: String) -> String {
            var t = x
            for p in o.regexesToIgnore {
                guard let re = try? NSRegularExpression(pattern: p) else { continue }   // validated by TaskSpec
                t = re.stringByReplacingMatches(in: t, range: NSRange(t.startIndex..., in: t), withTemplate: "")
            }
            if o.ignoreCase { t = t.lowercased() }
            if o.ignorePunctuation { t = String(String.UnicodeScalarView(t.unicodeScalars.filter { !asciiPunctuation.contains($0) })) }
            return t
        }
        return Array(norm(prediction).unicodeScalars) == Array(norm(reference).unicodeScalars) ? 1 : 0
    }

    static let asciiPunctuation = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars)

    // MARK: - loglikelihood_rolling

    /// Python's len(re.split(r"\s+", text)): maximal runs of str.isspace() characters, plus one.
    public static func wordCount(_ text: String) -> Int {
        var runs = 0, inRun = false
        for u in text.unicodeScalars {
            let ws = isPythonSpace(u)
            if ws && !inRun { runs += 1 }
            inRun = ws
        }
        return runs + 1
    }

    /// Python's str.isspace() for one code point (bidirectional class WS, B or S, or category Zs).
    static func isPythonSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// lm-eval weighted_mean: sum(lls) / sum(weights), both summed left to right.
    public static func weightedMean(_ lls: [Double], _ weights: [Int]) -> Double { pySum(lls) / Double(weights.reduce(0, +)) }
}
