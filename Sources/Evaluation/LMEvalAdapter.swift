// LMEvalAdapter: lm-eval's three verbs over a CausalLM and its tokenizer, the one place that owns
// lm-eval's request rules: text to tokens (`lmEvalEncodePair`, the prefix token for an empty context),
// truncation (Engine.Scorer: the last max_positions + 1 tokens), rolling windows (`rollingWindows`,
// the first conditioned on the prefix token, log-likelihoods summed from 0, left to right) and stop rules
// (`GenerateUntil`). Scored requests go through the request cache when one is given, so a resumed run
// reuses them; every request of one call is scored in one Scorer call (the choices of a document share
// one prefill of its context).

import Engine
import Tokenizers

public final class LMEvalAdapter: LanguageModel {
    public let model: CausalLM
    public let tokenizer: Tokenizer
    /// The token an empty context conditions on (BOS, else end-of-text).
    public let prefix: Int
    /// Scored requests kept on disk; an interrupted run resumes from them (nil: no cache).
    public var cache: RequestCache?
    public private(set) var tokensProcessed = 0

    public init(model: CausalLM, tokenizer: Tokenizer, cache: RequestCache? = nil) throws {
        self.model = model; self.tokenizer = tokenizer; self.cache = cache
        self.prefix = try prefixToken(tokenizer, model.config)
    }

    /// Token-level requests, as lm-eval encodes them (`lmEvalEncodePair`); its errors name the request.
    public func encode(_ requests: [TextPair]) throws -> [LoglikelihoodRequest] {
        try requests.enumerated().map { i, r in
            do {
                let (c, x) = try lmEvalEncodePair(tokenizer, r.context, r.continuation, prefix: prefix)
                return LoglikelihoodRequest(context: c, continuation: x)
            } catch {
                throw EvaluationError("\(r.label.isEmpty ? "request \(i)" : r.label): \(error)")
            }
        }
    }

    public func loglikelihood(_ requests: [TextPair]) throws -> [LoglikelihoodScore] {
        // runs of consecutive requests with the same group
        var groups: [Int] = []
        for (i, r) in requests.enumerated() {
            if i > 0 && requests[i - 1].group == r.group { groups[groups.count - 1] += 1 } else { groups.append(1) }
        }
        return try score(try encode(requests), groups: groups)
    }

    public func loglikelihoodRolling(_ texts: [String]) throws -> [Double] { try rollingScores(texts).map(\.logprob) }

    /// Each text's log-likelihood summed over its rolling windows, and its number of tokens.
    public func rollingScores(_ texts: [String]) throws -> [(logprob: Double, tokens: Int)] {
        let scorer = Scorer(model: model)
        let ids = texts.map { lmEvalEncode(tokenizer, $0) }
        let windows = ids.map { scorer.rollingRequests($0, prefixToken: prefix) }
        let scores = try score(windows.flatMap { $0 }, groups: windows.map(\.count))   // a text's windows are summed together
        var out: [(logprob: Double, tokens: Int)] = [], j = 0
        for (w, t) in zip(windows, ids) {
            out.append((scores[j..<(j + w.count)].reduce(0.0) { $0 + $1.logprob }, t.count))   // is_greedy is discarded
            j += w.count
        }
        return out
    }

    public func generateUntil(_ requests: [GenerationTask]) throws -> [String] {
        // one batch per (until, max_gen_toks): a task's requests share them
        var out = [String](repeating: "", count: requests.count)
        var groups: [[Int]] = [], keys: [GenerationTask] = []
        for (i, r) in requests.enumerated() {
            let key = GenerationTask(context: "", until: r.until, maxGenToks: r.maxGenToks)
            if let g = keys.firstIndex(of: key) { groups[g].append(i) } else { keys.append(key); groups.append([i]) }
        }
        for (key, idx) in zip(keys, groups) {
            let texts = try GenerateUntil(model: model, tokenizer: tokenizer)
                .generate(idx.map { requests[$0].context }, until: key.until, maxGenToks: key.maxGenToks, tokens: &tokensProcessed)
            for (i, t) in zip(idx, texts) { out[i] = t }
        }
        return out
    }

    /// Token-level requests scored (through the cache when there is one; `groups` as `RequestCache.resolve`).
    public func score(_ requests: [LoglikelihoodRequest], groups: [Int]? = nil) throws -> [LoglikelihoodScore] {
        guard !requests.isEmpty else { return [] }
        tokensProcessed += requests.reduce(0) { $0 + $1.context.count + $1.continuation.count }
        let scorer = Scorer(model: model)
        if let cache {
            return try cache.resolve(requests, groups: groups) { try scorer.loglikelihood($0) }.map { LoglikelihoodScore(logprob: $0.0, isGreedy: $0.1) }
        }
        return try scorer.loglikelihood(requests).map { LoglikelihoodScore(logprob: $0.logprob, isGreedy: $0.isGreedy) }
    }
}
