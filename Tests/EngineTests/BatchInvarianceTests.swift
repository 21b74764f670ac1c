// Batch invariance (property tests): a request's log-likelihood, per-token log-probs and greedy flag
// are bit-identical whether it is scored alone or in any batch, in any order, with any batch size in
// tokens and at any thread count, for the same layout and dtype. GPT-2-like and Llama-like (RoPE, GQA,
// SwiGLU, RMSNorm) random models; f32 and bf16 weights; TP 1 and TP 2 in-process.

import Testing
import PropertyBased
import Engine
import Model
import TensorCore

struct BatchInvarianceTests {
    static let gpt2 = ModelConfig(vocabSize: 211, hiddenSize: 64, numLayers: 2, numHeads: 4, maxPositions: 48)
    static let llama = ModelConfig(vocabSize: 199, hiddenSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2, ffnSize: 96,
                                   maxPositions: 48, norm: .rmsnorm, activation: .swiglu, positions: .rope,
                                   tiedEmbeddings: false, linearBias: false)

    /// 14 requests: contexts of 1-30 tokens (some shared), continuations of 1-9; one overflows the window.
    static func requests(vocab: Int) -> [LoglikelihoodRequest] {
        var g = SplitMix64(seed: 99)
        func toks(_ n: Int) -> [Int] { (0..<n).map { _ in Int(g.next() % UInt64(vocab)) } }
        var out: [LoglikelihoodRequest] = []
        for i in 0..<12 {
            let ctx = toks(1 + Int(g.next() % 30))
            out.append(LoglikelihoodRequest(context: ctx, continuation: toks(1 + i % 9)))
            if i % 4 == 0 { out.append(LoglikelihoodRequest(context: ctx, continuation: toks(2 + i % 5))) }
        }
        out[5].context = toks(45)   // with its continuation longer than the 48 positions: truncated on the left
        return out
    }

    static func alone(_ scorer: Scorer, _ reqs: [LoglikelihoodRequest]) throws -> [LoglikelihoodResult] {
        try reqs.map { try scorer.loglikelihood([$0])[0] }
    }

    static func bits(_ r: LoglikelihoodResult) -> [UInt64] { [r.logprob.bitPattern, r.isGreedy ? 1 : 0] + r.tokenLogprobs.map(\.bitPattern) }

    static func check(_ model: CausalLM) async throws {
        let reqs = requests(vocab: model.config.vocabSize)
        let reference = try alone(Scorer(model: model), reqs).map(bits)
        let saved = Compute.threads
        defer { Compute.setThreads(saved) }
        await propertyCheck(count: 12, input: Gen.shuffled(Array(reqs.indices)), Gen.int(in: 1...300), Gen.int(in: 1...3), Gen.int(in: 1...14),
                            Gen.int(in: 1...80)) { order, batchTokens, threads, n, micro in
            Compute.setThreads(threads)
            let chosen = Array(order.prefix(n))
            var m = model
            if var single = model as? DecoderModel { single.microBatchTokens = micro; m = single }   // layers over groups of sequences
            let got = try Scorer(model: m, batchTokens: batchTokens).loglikelihood(chosen.map { reqs[$0] })
            for (r, i) in zip(got, chosen) {
                #expect(bits(r) == reference[i], "request \(i) in a batch of \(n) (batchTokens \(batchTokens), \(threads) threads, micro-batches of \(micro) rows)")
            }
        }
    }

    @Test(arguments: [("gpt2", ComputeDType.float32), ("gpt2", .bfloat16), ("llama", .float32), ("llama", .bfloat16)])
    func singleRank(_ arch: String, _ dtype: ComputeDType) async throws {
        let c = arch == "gpt2" ? Self.gpt2 : Self.llama
        try await Self.check(DecoderModel(weights: try DecoderWeights(.random(config: c, seed: 5, std: 0.2), dtype: dtype)))
    }

    @Test func tensorParallelTwo() async throws {
        try await Self.check(try ShardedEngine(.random(config: Self.llama, seed: 6, std: 0.2), layout: ParallelLayout(tp: 2, pp: 1)))
    }

    /// The scores do depend on the weights' dtype (the property above is not vacuous).
    @Test func bf16DiffersFromF32() throws {
        let ck = CanonicalCheckpoint.random(config: Self.gpt2, seed: 5, std: 0.2)
        let reqs = Self.requests(vocab: Self.gpt2.vocabSize)
        let a = try Scorer(model: DecoderModel(weights: try DecoderWeights(ck))).loglikelihood(reqs)
        let b = try Scorer(model: DecoderModel(weights: try DecoderWeights(ck, dtype: .bfloat16))).loglikelihood(reqs)
        #expect(a.map(\.logprob) != b.map(\.logprob))
        for (x, y) in zip(a, b) { #expect(abs(x.logprob - y.logprob) < 0.05 * max(1, abs(x.logprob))) }
    }
}
