// Evaluator: one task at one shot count over a LanguageModel (lm-eval's three verbs), scored as
// lm-eval 0.4.13 scores it.
//
// Contract: the first `limit` evaluated documents (all when nil) get their prompts from PromptBuilder
// (seeded shots, document order) and are run in chunks of documents: every loglikelihood or
// multiple_choice request of a chunk goes to the model in one `loglikelihood` call (so an LMEvalAdapter
// scores the choices of a document from one prefill of its context), loglikelihood_rolling documents in
// one `loglikelihoodRolling` call, generate_until contexts in one `generateUntil` call. How text becomes
// tokens, truncation, rolling windows and stop rules are the model's (LMEvalAdapter). Per-document
// metrics and aggregates follow Metrics. `progress` sees (documents done, total, tokens run) after each chunk.

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
    public var metrics: [Metric: Double]
    /// generate_until: the generated text (cut at the first stop string).
    public var generated: String? = nil
    /// loglikelihood_rolling: the document's words and UTF-8 bytes (the weights of its log-likelihood).
    public var words: Int? = nil
    public var bytes: Int? = nil
}

public struct MetricValue: Sendable {
    public var metric: Metric
    public var value: Double
    public var stderr: Double?
    /// lm-eval's name for it.
    public var name: String { metric.rawValue }
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
    public let model: LanguageModel
    public var docsPerChunk = 32
    public var bootstrapIters = 100_000

    public init(model: LanguageModel) { self.model = model }

    /// lm-eval's rules over a causal model and its tokenizer (an `LMEvalAdapter`), with an optional request cache.
    public init(model: CausalLM, tokenizer: Tokenizer, cache: RequestCache? = nil) throws {
        self.model = try LMEvalAdapter(model: model, tokenizer: tokenizer, cache: cache)
    }

    /// Text-level requests for the first `limit` documents (no model needed).
    public static func prompts(_ task: LoadedTask, numFewshot k: Int, limit: Int?, seed: Int) throws -> [DocRequests] {
        let docs = limit.map { Array(task.evalDocs.prefix($0)) } ?? task.evalDocs
        var builder = PromptBuilder(spec: task.spec, pool: k > 0 ? try task.fewshotPool() : [], seed: seed)
        let out = try docs.enumerated().map { try builder.build($1, docID: $0, k: k) }
        if builder.selfInContext > 0 {
            EngineWarnings.handler("\(task.spec.name) at \(k) shots: \(builder.selfInContext) of \(docs.count) documents drew themselves among their own shots "
                + "(the few-shot pool holds the evaluated documents and the task does not exclude them); scores follow lm-eval, which does the same")
        }
        return out
    }

    public func evaluate(_ task: LoadedTask, numFewshot k: Int, limit: Int?, seed: Int = 1234,
                         progress: ((Int, Int, Int) -> Void)? = nil) throws -> TaskResult {
        let t0 = Date(), tokens0 = model.tokensProcessed
        let spec = task.spec
        let prompts = try Self.prompts(task, numFewshot: k, limit: limit, seed: seed)
        var lls: [[Double]] = [], greedy: [[Bool]] = [], texts: [String] = []
        var start = 0
        while start < prompts.count {
            let chunk = prompts[start..<min(prompts.count, start + docsPerChunk)]
            switch spec.outputType {
            case .generateUntil:
                texts += try model.generateUntil(chunk.map {
                    GenerationTask(context: $0.requests[0].context, until: spec.generation.until, maxGenToks: spec.generation.maxGenToks) })
            case .loglikelihoodRolling:
                for ll in try model.loglikelihoodRolling(chunk.map { $0.requests[0].continuation }) { lls.append([ll]); greedy.append([]) }
            case .loglikelihood, .multipleChoice:
                let pairs = chunk.flatMap { d in d.requests.enumerated().map { i, r in
                    TextPair(context: r.context, continuation: r.continuation, label: "\(spec.name) document \(d.docID) request \(i)", group: d.docID) } }
                let scores = try model.loglikelihood(pairs)
                var j = 0
                for d in chunk {
                    let part = scores[j..<(j + d.requests.count)]
                    lls.append(part.map(\.logprob)); greedy.append(part.map(\.isGreedy))
                    j += d.requests.count
                }
            }
            start += chunk.count
            progress?(start, prompts.count, model.tokensProcessed - tokens0)
        }
        var docs: [DocResult] = []
        for (i, p) in prompts.enumerated() {
            var m: [Metric: Double] = [:]
            var pred: Int? = nil
            var doc = DocResult(docID: p.docID, requests: p.requests, loglikelihoods: [], isGreedy: [],
                                choices: p.choices, gold: p.gold, target: p.target, prediction: nil, metrics: [:])
            switch spec.outputType {
            case .loglikelihood:
                if spec.metrics.contains(.perplexity) { m[.perplexity] = lls[i][0] }
                if spec.metrics.contains(.acc) { m[.acc] = greedy[i][0] ? 1 : 0 }
            case .multipleChoice:
                pred = Metrics.argmax(lls[i])
                if spec.metrics.contains(.acc) { m[.acc] = pred == p.gold ? 1 : 0 }
                if spec.metrics.contains(.accNorm) {
                    let norm = zip(lls[i], p.choices).map { $0 / Double($1.unicodeScalars.count) }
                    m[.accNorm] = Metrics.argmax(norm) == p.gold ? 1 : 0
                }
            case .generateUntil:
                doc.generated = texts[i]
                if spec.metrics.contains(.exactMatch) { m[.exactMatch] = Metrics.exactMatch(texts[i], p.target, spec.exactMatch) }
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
        for metric in spec.metrics {
            switch metric {
            case .wordPerplexity, .bytePerplexity, .bitsPerByte:
                guard !docs.isEmpty else { continue }
                let ll = docs.map { $0.loglikelihoods[0] }
                let w = metric == .wordPerplexity ? docs.map { $0.words! } : docs.map { $0.bytes! }
                let mean = Metrics.weightedMean(ll, w)
                metrics.append(MetricValue(metric: metric, value: metric == .bitsPerByte ? -mean / log(2.0) : exp(-mean), stderr: nil))
            case .perplexity:
                let xs = docs.compactMap { $0.metrics[metric] }
                guard !xs.isEmpty else { continue }
                metrics.append(MetricValue(metric: metric, value: Metrics.perplexity(xs),
                                           stderr: Metrics.bootstrapPerplexityStderr(xs, iters: bootstrapIters)))
            case .acc, .accNorm, .exactMatch:
                let xs = docs.compactMap { $0.metrics[metric] }
                guard !xs.isEmpty else { continue }
                metrics.append(MetricValue(metric: metric, value: Metrics.mean(xs), stderr: Metrics.meanStderr(xs)))
            }
        }
        return TaskResult(task: spec.name, numFewshot: k, seed: seed, documentsAvailable: task.evalDocs.count,
                          docs: docs, metrics: metrics, seconds: Date().timeIntervalSince(t0), tokens: model.tokensProcessed - tokens0)
    }
}
