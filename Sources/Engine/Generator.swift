// Generator: batched prefill plus incremental decode on per-sequence KV caches, at the token level.
//
// All prompts are prefilled in one stacked forward; then every step decodes one token for each
// sequence still running, in one stacked forward. Each sequence has its own sampler (its own seeded
// RNG stream), so a sequence's text does not depend on what else is in the batch. The caller sees
// every token as it is made (`onToken`) and may stop a sequence (stop strings live a layer up,
// where text is).

import TensorCore
import Model

public struct GenerationRequest: Sendable {
    public var prompt: [Int]
    public var maxTokens: Int
    public var sampling: SamplingParams
    public var stopTokens: Set<Int>
    public init(prompt: [Int], maxTokens: Int, sampling: SamplingParams = .init(), stopTokens: Set<Int> = []) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling; self.stopTokens = stopTokens
    }
}

public struct Generator {
    public let model: CausalLM
    public init(model: CausalLM) { self.model = model }

    /// Returns the generated ids per request (stop tokens excluded). `onToken(seq, token)` returns
    /// false to end that sequence after this token.
    @discardableResult
    public func generate(_ requests: [GenerationRequest],
                         onToken: (Int, Int) -> Bool = { _, _ in true }) throws -> [[Int]] {
        let P = model.config.maxPositions
        var caches: [SequenceCache] = []
        for (i, r) in requests.enumerated() {
            guard !r.prompt.isEmpty else { throw ScoringError(description: "generation request \(i): the prompt has no tokens") }
            guard r.prompt.count < P else {
                throw ScoringError(description: "generation request \(i): prompt of \(r.prompt.count) tokens leaves no room in the model's \(P) positions")
            }
            caches.append(try model.makeSequenceCache(capacity: min(P, r.prompt.count + r.maxTokens)))
        }
        var samplers = requests.map { Sampler($0.sampling) }
        var outputs = [[Int]](repeating: [], count: requests.count)
        var active = Array(0..<requests.count).filter { requests[$0].maxTokens > 0 }
        var logits = try model.forward(tokens: active.map { requests[$0].prompt }, caches: active.map { caches[$0] }, logits: .last)
        let V = model.config.vocabSize
        while !active.isEmpty {
            var next: [Int] = []
            var stillActive: [Int] = []
            for (row, s) in active.enumerated() {
                let tok = try logits.data.withUnsafeBufferPointer { b in
                    let rowLogits = UnsafeBufferPointer(start: b.baseAddress! + row * V, count: V)
                    guard !rowLogits.contains(where: { !$0.isFinite }) else {
                        throw ScoringError(description: "generation request \(s): the model's logits hold NaN or infinite values after \(outputs[s].count) generated tokens (non-finite weights or activations)")
                    }
                    return samplers[s].sample(rowLogits) }
                if requests[s].stopTokens.contains(tok) { continue }
                outputs[s].append(tok)
                let goOn = onToken(s, tok)
                if goOn && outputs[s].count < requests[s].maxTokens && caches[s].length < caches[s].capacity {
                    stillActive.append(s); next.append(tok)
                }
            }
            active = stillActive
            if active.isEmpty { break }
            logits = try model.forward(tokens: next.map { [$0] }, caches: active.map { caches[$0] }, logits: .last)
        }
        return outputs
    }
}
