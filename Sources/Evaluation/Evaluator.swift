// Evaluator: one task at one shot count over a CausalLM, scored as lm-eval 0.4.13 scores it.
//
// Contract: the first `limit` evaluated documents (all when nil) get their prompts from PromptBuilder
// (seeded shots, document order) and are run in chunks of documents: loglikelihood and multiple_choice
// requests are encoded with lmEvalEncodePair and scored by Engine.Scorer (every request of a chunk in one
// Scorer call, so the choices of a document share one prefill of its context); loglikelihood_rolling
// documents become lm-eval's disjoint rolling windows (rollingWindows over lmEvalEncode(text), first
// window conditioned on the prefix token), scored the same way and summed per document; generate_until
// contexts go to GenerateUntil (greedy, one batch per chunk). Per-document metrics and aggregates follow
// Metrics. `progress` sees (documents done, total, tokens run) after each chunk.

import Foundation
import Engine
import Tasks
import Tokenizers

public struct DocResult: Sendable {
    public var docID: Int
    public var requests: [(context: String, continuation: String)]
    public var loglikelihoods: [Double]
    public var isGreedy: [Bool]
    public var choices: [String]
    public var gold: Int?
    public var target: String
    public var prediction: Int?
    public var metrics: [String: Double]
    /// generate_until: the generated text (cut at the first stop string).
    public var generated: String? = nil
    /// loglikelihood_rolling: the document's words and UTF-8 bytes (the weights of its log-likelihood).
    public var words: Int? = nil
    public var bytes: Int? = nil
}

public struct MetricValue: Sendable {
    public var name: String
    public var value: Double
    public var stderr: Double?
}

public struct TaskResult: Sendable {
    public var task: String
    public var numFewshot: Int
    public var seed: Int
    public var documentsAvailable: Int
    public var docs: [DocResult]
    public var metrics: [MetricValue]
    public var seconds: Double
    public var tokens: Int
}

public struct Evaluator {
    public let model: CausalLM
    public let tokenizer: Tokenizer
    public let prefix: Int
    public var docsPerChunk = 32
    public var bootstrapIters = 100_000
    /// Scored requests kept on disk; an interrupted run resumes from them (nil: no cache).
    public var cache: RequestCache?

    public init(model: CausalLM, tokenizer: Tokenizer) throws {
        self.model = model; self.tokenizer = tokenizer
        self.prefix = try prefixToken(tokenizer, model.config)
    }

    /// Text-level requests for the first `limit` documents (no model needed).
    public static func prompts(_ task: LoadedTask, numFewshot k: Int, limit: Int?, seed: Int) throws -> [DocRequests] {
        let docs = limit.map { Array(task.evalDocs.prefix($0)) } ?? task.evalDocs
        var builder = PromptBuilder(spec: task.spec, pool: k > 0 ? try task.fewshotPool() : [], seed: seed)
        return try docs.enumerated().map { try builder.build($1, docID: $0, k: k) }
    }

    public func evaluate(_ task: LoadedTask, numFewshot k: Int, limit: Int?, seed: Int = 1234,
                         progress: ((Int, Int, Int) -> Void)? = nil) throws -> TaskResult {
        let t0 = Date()
        let spec = task.spec
        let prompts = try Self.prompts(task, numFewshot: k, limit: limit, seed: seed)
        var lls: [[Double]] = [], greedy: [[Bool]] = [], texts: [String] = []
        var tokens = 0
        var start = 0
        while start < prompts.count {
            let chunk = prompts[start..<min(prompts.count, start + docsPerChunk)]
            if spec.outputType == .generateUntil {
                texts += try GenerateUntil(model: model, tokenizer: tokenizer)
                    .generate(chunk.map { $0.requests[0].context }, until: spec.generation.until,
                              maxGenToks: spec.generation.maxGenToks, tokens: &tokens)
            } else {
                // per document: its token-level requests (one per choice, or its rolling windows)
                var perDoc: [[LoglikelihoodRequest]] = []
                for d in chunk {
                    var rs: [LoglikelihoodRequest] = []
                    for (i, r) in d.requests.enumerated() {
                        if spec.outputType == .loglikelihoodRolling {
                            rs += rollingWindows(lmEvalEncode(tokenizer, r.continuation), prefixToken: prefix, maxLength: model.config.maxPositions)
                                .map { LoglikelihoodRequest(context: $0.context, continuation: $0.continuation) }
                            continue
                        }
                        let (c, x) = lmEvalEncodePair(tokenizer, r.context, r.continuation, prefix: prefix)
                        guard !x.isEmpty else {
                            throw EvaluationError("\(spec.name) document \(d.docID) request \(i): the continuation \"\(r.continuation)\" encodes to no tokens")
                        }
                        rs.append(LoglikelihoodRequest(context: c, continuation: x))
                    }
                    tokens += rs.reduce(0) { $0 + $1.context.count + $1.continuation.count }
                    perDoc.append(rs)
                }
                let reqs = perDoc.flatMap { $0 }
                let scorer = Scorer(model: model)
                let res: [(Double, Bool)] = reqs.isEmpty ? [] : try cache.map { try $0.resolve(reqs) { try scorer.loglikelihood($0) } }
                    ?? scorer.loglikelihood(reqs).map { ($0.logprob, $0.isGreedy) }
                var j = 0
                for rs in perDoc {
                    let part = res[j..<(j + rs.count)]
                    if spec.outputType == .loglikelihoodRolling {
                        // lm-eval: sum(nll[0] for the windows), from 0, left to right; is_greedy is discarded
                        lls.append([part.reduce(0.0) { $0 + $1.0 }]); greedy.append([])
                    } else {
                        lls.append(part.map(\.0)); greedy.append(part.map(\.1))
                    }
                    j += rs.count
                }
            }
            start += chunk.count
            progress?(start, prompts.count, tokens)
        }
        var docs: [DocResult] = []
        for (i, p) in prompts.enumerated() {
            var m: [String: Double] = [:]
            var pred: Int? = nil
            var doc = DocResult(docID: p.docID, requests: p.requests, loglikelihoods: [], isGreedy: [],
                                choices: p.choices, gold: p.gold, target: p.target, prediction: nil, metrics: [:])
            switch spec.outputType {
            case .loglikelihood:
                if spec.metrics.contains("perplexity") { m["perplexity"] = lls[i][0] }
                if spec.metrics.contains("acc") { m["acc"] = greedy[i][0] ? 1 : 0 }
            case .multipleChoice:
                pred = Metrics.argmax(lls[i])
                if spec.metrics.contains("acc") { m["acc"] = pred == p.gold ? 1 : 0 }
                if spec.metrics.contains("acc_norm") {
                    let norm = zip(lls[i], p.choices).map { $0 / Double($1.unicodeScalars.count) }
                    m["acc_norm"] = Metrics.argmax(norm) == p.gold ? 1 : 0
                }
            case .generateUntil:
                doc.generated = texts[i]
                if spec.metrics.contains("exact_match") { m["exact_match"] = Metrics.exactMatch(texts[i], p.target, spec.exactMatch) }
            case .loglikelihoodRolling:
                doc.words = Metrics.wordCount(p.target)
                doc.bytes = p.target.utf8.count
            }
            if spec.outputType != .generateUntil { doc.loglikelihoods = lls[i]; doc.isGreedy = greedy[i] }
            doc.prediction = pred
            doc.metrics = m
            docs.append(doc)
        }
        var metrics: [MetricValue] = []
        for name in spec.metrics {
            switch name {
            case "word_perplexity", "byte_perplexity", "bits_per_byte":
                guard !docs.isEmpty else { continue }
                let ll = docs.map { $0.loglikelihoods[0] }
                let w = name == "word_perplexity" ? docs.map { $0.words! } : docs.map { $0.bytes! }
                let mean = Metrics.weightedMean(ll, w)
                metrics.append(MetricValue(name: name, value: name == "bits_per_byte" ? -mean / log(2.0) : exp(-mean), stderr: nil))
            case "perplexity":
                let xs = docs.compactMap { $0.metrics[name] }
                guard !xs.isEmpty else { continue }
                metrics.append(MetricValue(name: name, value: Metrics.perplexity(xs),
                                           stderr: Metrics.bootstrapPerplexityStderr(xs, iters: bootstrapIters)))
            default:
                let xs = docs.compactMap { $0.metrics[name] }
                guard !xs.isEmpty else { continue }
                metrics.append(MetricValue(name: name, value: Metrics.mean(xs), stderr: Metrics.meanStderr(xs)))
            }
        }
        return TaskResult(task: spec.name, numFewshot: k, seed: seed, documentsAvailable: task.evalDocs.count,
                          docs: docs, metrics: metrics, seconds: Date().timeIntervalSince(t0), tokens: tokens)
    }
}
