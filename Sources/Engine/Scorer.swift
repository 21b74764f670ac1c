// Scorer: lm-evaluation-harness's loglikelihood and loglikelihood_rolling on token ids.
//
// Contract (lm-eval 0.4 `_loglikelihood_tokens`): the model sees (context + continuation) left-
// truncated to its last max_positions+1 tokens minus the final one; the result is the sum of the
// continuation tokens' log-softmax over the full vocabulary, and whether greedy argmax reproduces
// every continuation token. Requests sharing a context are scored from one prefill of that context:
// each continuation branches from a fork of its KV cache. The log-softmax is vocab-parallel
// (`LogitRows.scores`): under tensor parallelism no rank ever holds a full vocabulary row.

import Foundation
import TensorCore
import Model

public struct LoglikelihoodRequest: Sendable, Hashable {
    public var context: [Int]        // non-empty: an empty text context is [eot] (the caller's job)
    public var continuation: [Int]   // non-empty
    public init(context: [Int], continuation: [Int]) { self.context = context; self.continuation = continuation }
}

public struct LoglikelihoodResult: Sendable, Equatable {
    public var logprob: Double
    public var isGreedy: Bool
    public var tokenLogprobs: [Double]
    public var tokens: Int { tokenLogprobs.count }
}

public struct ScoringError: Error, CustomStringConvertible { public let description: String }

/// Where scoring and generation say that they changed what was asked (stderr unless the command
/// routes it, e.g. to the primary rank's log only).
public enum EngineWarnings {
    nonisolated(unsafe) public static var handler: (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) }
}

public struct Scorer {
    public let model: CausalLM
    /// Tokens (contexts plus continuations) per batch of contexts.
    public var batchTokens: Int
    public init(model: CausalLM, batchTokens: Int = 2048) { self.model = model; self.batchTokens = batchTokens }

    /// Results in request order.
    public func loglikelihood(_ requests: [LoglikelihoodRequest], progress: ((Int) -> Void)? = nil) throws -> [LoglikelihoodResult] {
        let maxLen = model.config.maxPositions
        // Truncate each request as lm-eval does, then group by (truncated) context.
        var groups: [[Int]: [Int]] = [:]
        var order: [[Int]] = []
        var truncated: [LoglikelihoodRequest] = []
        var cut: [(Int, Int)] = []   // (request, continuation tokens not scored... conditioned on less)
        for (i, r) in requests.enumerated() {
            guard !r.context.isEmpty, !r.continuation.isEmpty else {
                throw ScoringError(description: "request \(i): context and continuation must both have tokens (an empty text context conditions on end-of-text)")
            }
            var whole = r.context + r.continuation
            if whole.count > maxLen + 1 { whole.removeFirst(whole.count - (maxLen + 1)) }
            let contLen = min(r.continuation.count, maxLen)
            if r.continuation.count > maxLen { cut.append((i, r.continuation.count - maxLen)) }
            let ctx = Array(whole[..<(whole.count - contLen)])
            let cont = Array(whole[(whole.count - contLen)...])
            truncated.append(LoglikelihoodRequest(context: ctx, continuation: cont))
            if groups[ctx] == nil { order.append(ctx) }
            groups[ctx, default: []].append(i)
        }
        if let (first, n) = cut.first {
            // lm-eval scores such a continuation over its last max_positions tokens only; so does
            // Turing (same numbers), but not silently
            EngineWarnings.handler("\(cut.count) request(s) have a continuation longer than the model's \(maxLen) positions; "
                + "as lm-eval does, only its last \(maxLen) tokens are scored (request \(first): \(n) tokens not scored)")
        }
        var results = [LoglikelihoodResult?](repeating: nil, count: requests.count)
        var done = 0
        // Contexts are processed in batches of about `batchTokens` tokens: one stacked forward
        // prefills every context of the batch but its last token; a second scores every continuation
        // of the batch, each branching from a fork of its context's cache with [last context token] +
        // continuation[:-1] and the vocab-parallel log-softmax (no full vocabulary row is gathered).
        // Few large forwards instead of two per document: the weights are read once per batch.
        var start = 0
        while start < order.count {
            var end = start, tokens = 0
            while end < order.count && (end == start || tokens + order[end].count <= batchTokens) {
                tokens += order[end].count + groups[order[end]]!.reduce(0) { $0 + truncated[$1].continuation.count }
                end += 1
            }
            let batch = Array(order[start..<end])
            for ctx in batch where ctx.isEmpty {
                throw ScoringError(description: "request \(groups[ctx]![0]): continuation fills the whole window; nothing to condition on")
            }
            let bases = try batch.map { ctx in
                try model.makeSequenceCache(capacity: ctx.count + groups[ctx]!.map { truncated[$0].continuation.count }.max()!)
            }
            if batch.contains(where: { $0.count > 1 }) {
                _ = try model.forward(tokens: batch.map { Array($0.dropLast()) }, caches: bases, logits: .none)
            }
            var members: [Int] = [], inputs: [[Int]] = [], conts: [[Int]] = [], caches: [SequenceCache] = []
            for (g, ctx) in batch.enumerated() {
                for m in groups[ctx]! {
                    let cont = truncated[m].continuation
                    members.append(m); conts.append(cont); inputs.append([ctx.last!] + cont.dropLast()); caches.append(try bases[g].forked())
                }
            }
            let scores = try model.forward(tokens: inputs, caches: caches, logits: .scores(targets: conts))
            var row = 0
            for (j, m) in members.enumerated() {
                var lps: [Double] = []
                var greedy = true
                for _ in conts[j] {
                    let st = row * 3
                    lps.append(Double(scores.data[st]) + Double(scores.data[st + 1]))
                    if scores.data[st + 2] == 0 { greedy = false }
                    row += 1
                }
                let total = lps.reduce(0, +)
                guard total.isFinite else {
                    throw ScoringError(description: "request \(m): the log-likelihood is \(total): the model's logits hold NaN or infinite values (non-finite weights or activations)")
                }
                results[m] = LoglikelihoodResult(logprob: total, isGreedy: greedy, tokenLogprobs: lps)
                done += 1
            }
            progress?(done)
            start = end
        }
        return results.map { $0! }
    }

    /// lm-eval loglikelihood_rolling: total log-prob of `tokens`, every token predicted once, in
    /// windows of max_positions with the first conditioned on `prefixToken` (end-of-text).
    public func loglikelihoodRolling(_ tokens: [Int], prefixToken: Int) throws -> Double {
        try loglikelihood(rollingRequests(tokens, prefixToken: prefixToken)).reduce(0) { $0 + $1.logprob }
    }

    /// lm-eval's disjoint rolling windows over `tokens` for this model's positions, as requests.
    public func rollingRequests(_ tokens: [Int], prefixToken: Int) -> [LoglikelihoodRequest] {
        rollingWindows(tokens, prefixToken: prefixToken, maxLength: model.config.maxPositions)
            .map { LoglikelihoodRequest(context: $0.context, continuation: $0.continuation) }
    }
}

/// lm-eval's `get_rolling_token_windows(context_len=1)` followed by `make_disjoint_window`.
public func rollingWindows(_ tokens: [Int], prefixToken: Int, maxLength: Int) -> [(context: [Int], continuation: [Int])] {
    guard !tokens.isEmpty else { return [] }
    var out: [([Int], [Int])] = []
    let predLen = maxLength
    let first = min(maxLength, tokens.count)
    out.append(([prefixToken] + tokens[..<(first - 1)], Array(tokens[..<first])))
    var predicted = first
    while predicted < tokens.count {
        let n = min(tokens.count - predicted, predLen)
        let end = predicted + n
        out.append((Array(tokens[max(0, end - maxLength - 1)..<(end - 1)]), Array(tokens[(end - n)..<end])))
        predicted += n
    }
    // disjoint: drop the context's overlap with the continuation
    return out.map { (a, b) in (Array(a[..<(a.count - (b.count - 1))]), b) }
}
