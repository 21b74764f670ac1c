// Evaluator: one task at one shot count over a CausalLM, scored as lm-eval 0.4.13 scores it.
//
// Contract: the first `limit` evaluated documents (all when nil) get their prompts from PromptBuilder
// (seeded shots, document order), are encoded with lmEvalEncodePair and scored by Engine.Scorer in chunks
// of documents (every request of a chunk in one Scorer call, so the choices of a document share one
// prefill of its context); per-document metrics and aggregates follow Metrics. `progress` sees
// (documents done, total, tokens scored) after each chunk.

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
        let prompts = try Self.prompts(task, numFewshot: k, limit: limit, seed: seed)
        var lls: [[Double]] = [], greedy: [[Bool]] = []
        var tokens = 0
        var start = 0
        while start < prompts.count {
            let chunk = prompts[start..<min(prompts.count, start + docsPerChunk)]
            var reqs: [LoglikelihoodRequest] = []
            for d in chunk {
                for (i, r) in d.requests.enumerated() {
                    let (c, x) = lmEvalEncodePair(tokenizer, r.context, r.continuation, prefix: prefix)
                    guard !x.isEmpty else {
                        throw EvaluationError("\(task.spec.name) document \(d.docID) request \(i): the continuation \"\(r.continuation)\" encodes to no tokens")
                    }
                    reqs.append(LoglikelihoodRequest(context: c, continuation: x))
                    tokens += c.count + x.count
                }
            }
            let scorer = Scorer(model: model)
            let res: [(Double, Bool)] = try cache.map { try $0.resolve(reqs) { try scorer.loglikelihood($0) } }
                ?? scorer.loglikelihood(reqs).map { ($0.logprob, $0.isGreedy) }
            var j = 0
            for d in chunk {
                lls.append(res[j..<(j + d.requests.count)].map(\.0))
                greedy.append(res[j..<(j + d.requests.count)].map(\.1))
                j += d.requests.count
            }
            start += chunk.count
            progress?(start, prompts.count, tokens)
        }
        var docs: [DocResult] = []
        for (i, p) in prompts.enumerated() {
            var m: [String: Double] = [:]
            var pred: Int? = nil
            switch task.spec.outputType {
            case .loglikelihood:
                if task.spec.metrics.contains("perplexity") { m["perplexity"] = lls[i][0] }
                if task.spec.metrics.contains("acc") { m["acc"] = greedy[i][0] ? 1 : 0 }
            case .multipleChoice:
                pred = Metrics.argmax(lls[i])
                if task.spec.metrics.contains("acc") { m["acc"] = pred == p.gold ? 1 : 0 }
                if task.spec.metrics.contains("acc_norm") {
                    let norm = zip(lls[i], p.choices).map { $0 / Double($1.unicodeScalars.count) }
                    m["acc_norm"] = Metrics.argmax(norm) == p.gold ? 1 : 0
                }
            }
            docs.append(DocResult(docID: p.docID, requests: p.requests, loglikelihoods: lls[i], isGreedy: greedy[i],
                                  choices: p.choices, gold: p.gold, target: p.target, prediction: pred, metrics: m))
        }
        var metrics: [MetricValue] = []
        for name in task.spec.metrics {
            let xs = docs.compactMap { $0.metrics[name] }
            guard !xs.isEmpty else { continue }
            if name == "perplexity" {
                metrics.append(MetricValue(name: name, value: Metrics.perplexity(xs),
                                           stderr: Metrics.bootstrapPerplexityStderr(xs, iters: bootstrapIters)))
            } else {
                metrics.append(MetricValue(name: name, value: Metrics.mean(xs), stderr: Metrics.meanStderr(xs)))
            }
        }
        return TaskResult(task: task.spec.name, numFewshot: k, seed: seed, documentsAvailable: task.evalDocs.count,
                          docs: docs, metrics: metrics, seconds: Date().timeIntervalSince(t0), tokens: tokens)
    }
}
