// LanguageModel: what an evaluator asks of a model, as lm-evaluation-harness's `LM` class has it: three
// verbs on text. `LMEvalAdapter` provides them over a `CausalLM` and a tokenizer; a test can provide them
// with a dummy (the evaluator does not know there are tokens).

/// One loglikelihood request: the continuation's log-probability given the context.
public struct TextPair: Sendable, Hashable {
    public var context: String
    public var continuation: String
    /// Names the request in errors, e.g. "piqa document 3 choice 1".
    public var label: String
    /// Requests whose results are compared with each other (one document's choices) share a group:
    /// consecutive requests with the same group are scored together, never partly from a cache.
    public var group: Int
    public init(context: String, continuation: String, label: String = "", group: Int = 0) {
        self.context = context; self.continuation = continuation; self.label = label; self.group = group
    }
}

/// One generate_until request: greedy text from the context, cut at the first stop string.
public struct GenerationTask: Sendable, Hashable {
    public var context: String
    public var until: [String]
    public var maxGenToks: Int
    public init(context: String, until: [String], maxGenToks: Int) { self.context = context; self.until = until; self.maxGenToks = maxGenToks }
}

public struct LoglikelihoodScore: Sendable, Equatable {
    public var logprob: Double
    /// Greedy decoding reproduces the continuation.
    public var isGreedy: Bool
    public init(logprob: Double, isGreedy: Bool) { self.logprob = logprob; self.isGreedy = isGreedy }
}

public protocol LanguageModel: AnyObject {
    /// lm-eval `loglikelihood`: one score per request, in order.
    func loglikelihood(_ requests: [TextPair]) throws -> [LoglikelihoodScore]
    /// lm-eval `loglikelihood_rolling`: the log-likelihood of each whole text (no context), in order.
    func loglikelihoodRolling(_ texts: [String]) throws -> [Double]
    /// lm-eval `generate_until`: the generated text per request, in order.
    func generateUntil(_ requests: [GenerationTask]) throws -> [String]
    /// Tokens run so far (contexts, continuations and generated tokens), for progress lines.
    var tokensProcessed: Int { get }
}
