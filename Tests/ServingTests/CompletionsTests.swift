// POST /v1/completions on the demo model against the libraries `turing generate` and `turing score`
// run: greedy and seeded text equal `Generator` + `TextStream` (alone and among concurrent requests),
// echo + logprobs equal `Scorer`'s per-token log-probabilities for the whole prompt after its first
// token bit for bit (and within 1e-6 for other context/continuation splits), with its is_greedy as
// lm-eval derives it from top_logprobs; a stream's chunks add up to the whole answer.

import Foundation
import XCTest
import Engine
import Model
import Tokenizers
@testable import Serving

/// Runs blocking socket I/O off the cooperative pool (the server's handlers run there).
func blocking<T: Sendable>(_ f: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in DispatchQueue.global().async { c.resume(with: Result { try f() }) } }
}

func post(_ port: Int, _ path: String, _ json: String, headers: [String: String] = [:]) async throws -> HTTPResult {
    try await blocking { try RawHTTP.request(port, "POST", path, json: json, headers: headers) }
}

/// What `turing generate` prints after the prompt, from the libraries it runs.
func generateText(_ prompt: String, maxTokens: Int, sampling: SamplingParams, stops: [String] = []) throws -> String {
    let (model, tok) = Demo.loaded
    let ids = tok.encode(prompt)
    var stream = TextStream(tokenizer: tok, prompt: ids, stops: stops)
    var text = ""
    try Generator(model: model).generate([GenerationRequest(prompt: ids, maxTokens: maxTokens, sampling: sampling, stopTokens: defaultStopTokens(tok))]) { _, t in
        let (s, stopped) = stream.push(t); text += s; return !stopped
    }
    return text + stream.finish()
}

func choices(_ r: HTTPResult) throws -> [JSON] {
    guard r.status == 200 else { throw NSError(domain: "status \(r.status): \(r.text)", code: r.status) }
    guard case .array(let c)? = try r.json()["choices"] else { throw NSError(domain: "no choices: \(r.text)", code: 0) }
    return c
}
func str(_ j: JSON?) -> String? { if case .string(let s)? = j { return s }; return nil }

final class CompletionsTests: XCTestCase {
    let prompts = ["the cat", "a dog says", "the bird is", "the cow"]

    func testGreedyAndSeededTextEqualsGenerate() async throws {
        try await withServer { port, _ in
            for p in prompts {
                let greedy = try choices(try await post(port, "/v1/completions", #"{"model":"demo","prompt":"\#(p)","max_tokens":20,"temperature":0}"#))
                XCTAssertEqual(str(greedy[0]["text"]), try generateText(p, maxTokens: 20, sampling: SamplingParams()))
                let seeded = try choices(try await post(port, "/v1/completions", #"{"prompt":"\#(p)","max_tokens":20,"temperature":1.3,"top_k":0,"seed":7,"n":2}"#))
                XCTAssertEqual(seeded.count, 2)
                XCTAssertEqual(str(seeded[0]["text"]), try generateText(p, maxTokens: 20, sampling: SamplingParams(temperature: 1.3, seed: 7)))
                XCTAssertEqual(str(seeded[1]["text"]), try generateText(p, maxTokens: 20, sampling: SamplingParams(temperature: 1.3, seed: 8)))
            }
            // stop strings: the text ends before the first one, as turing generate --stop
            let s = try choices(try await post(port, "/v1/completions", #"{"prompt":"the cat","max_tokens":30,"temperature":0,"stop":["meow"," ."]}"#))
            XCTAssertEqual(str(s[0]["text"]), try generateText("the cat", maxTokens: 30, sampling: SamplingParams(), stops: ["meow", " ."]))
            XCTAssertEqual(s[0]["finish_reason"], "stop")
        }
    }

    func testConcurrentRequestsEqualSingleRuns() async throws {
        try await withServer({ $0.maxBatch = 4 }) { port, server in
            let bodies = (0..<12).map { i in #"{"prompt":"\#(prompts[i % 4])","max_tokens":\#(8 + i),"temperature":0.9,"seed":\#(100 + i)}"# }
            var solo: [String] = []
            for b in bodies { solo.append(str(try choices(try await post(port, "/v1/completions", b))[0]["text"])!) }
            let together = try await withThrowingTaskGroup(of: (Int, String).self) { g in
                for (i, b) in bodies.enumerated() { g.addTask { (i, str(try choices(try await post(port, "/v1/completions", b))[0]["text"])!) } }
                var out = [String](repeating: "", count: bodies.count)
                for try await (i, t) in g { out[i] = t }
                return out
            }
            XCTAssertEqual(together, solo)
            let s = server.engine.stats
            XCTAssertEqual(s.live, 0, "every sequence (and its cache) released")
        }
    }

    func testEchoLogprobsEqualScorerBits() async throws {
        let (model, tok) = Demo.loaded
        let texts = ["the cat says meow .", "a dog says woof . the cow says moo", "the bird is green"]
        let ids = texts.map { tok.encode($0) }
        try await withServer { port, _ in
            for maxTokens in [0, 1] {   // lm-eval sends max_tokens 1 and reads token_logprobs[ctxlen:-1]
                let body = #"{"prompt":\#(ids.map { "\($0)" }.joined(separator: ",").wrapped),"max_tokens":\#(maxTokens),"echo":true,"logprobs":1,"temperature":0}"#
                let cs = try choices(try await post(port, "/v1/completions", body))
                XCTAssertEqual(cs.count, ids.count)
                for (i, p) in ids.enumerated() {
                    guard case .object? = cs[i]["logprobs"], case .array(let lps)? = cs[i]["logprobs"]?["token_logprobs"],
                          case .array(let tops)? = cs[i]["logprobs"]?["top_logprobs"] else { return XCTFail("no logprobs: \(cs[i])") }
                    XCTAssertEqual(lps.count, p.count + maxTokens)
                    XCTAssertEqual(lps[0], .null)
                    XCTAssertEqual(str(cs[i]["text"])?.hasPrefix(texts[i]), true)
                    // `turing score` of the whole prompt after its first token: the same bits
                    let r = try Scorer(model: model).loglikelihood([LoglikelihoodRequest(context: [p[0]], continuation: Array(p[1...]))])[0]
                    let served = lps[1..<p.count].map { $0.doubleValue! }
                    XCTAssertEqual(served, r.tokenLogprobs, "prompt \(i)")
                    XCTAssertEqual(served.reduce(0, +), r.logprob)
                    // lm-eval's parse_logprobs: greedy when every token's logprob is the max of its top_logprobs
                    let greedy = zip(served, tops[1..<p.count]).allSatisfy { lp, top in
                        guard case .object(let kv) = top else { return false }
                        return lp == kv.map { $0.1.doubleValue! }.max()!
                    }
                    XCTAssertEqual(greedy, r.isGreedy, "prompt \(i)")
                    // any other split: Scorer runs the continuation as its own chunk, equal to ~1e-6 relative
                    for k in 2..<p.count {
                        let rk = try Scorer(model: model).loglikelihood([LoglikelihoodRequest(context: Array(p[..<k]), continuation: Array(p[k...]))])[0]
                        XCTAssertEqual(lps[k..<p.count].reduce(0) { $0 + $1.doubleValue! }, rk.logprob, accuracy: 1e-6 * max(1, abs(rk.logprob)))
                    }
                }
            }
        }
    }

    func testStreamChunksAddUpToTheAnswer() async throws {
        try await withServer { port, _ in
            let base = #""prompt":["the cat","the cow"],"max_tokens":15,"temperature":0.8,"seed":3,"logprobs":2,"echo":true"#
            let whole = try choices(try await post(port, "/v1/completions", "{\(base)}"))
            let r = try await post(port, "/v1/completions", #"{\#(base),"stream":true,"stream_options":{"include_usage":true}}"#)
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.headers["content-type"], "text/event-stream")
            let (events, done) = try sseEvents(r.text)
            XCTAssertTrue(done)
            var text = ["", ""], tokens: [[JSON]] = [[], []], lps: [[JSON]] = [[], []], finish: [JSON] = [.null, .null]
            for e in events.dropLast() {
                guard case .array(let cs)? = e["choices"], let c = cs.first, case .int(let i)? = c["index"] else { return XCTFail("bad chunk \(e)") }
                text[i] += str(c["text"])!
                if case .array(let t)? = c["logprobs"]?["tokens"] { tokens[i] += t }
                if case .array(let t)? = c["logprobs"]?["token_logprobs"] { lps[i] += t }
                if c["finish_reason"] != .null { finish[i] = c["finish_reason"]! }
            }
            for i in 0..<2 {
                XCTAssertEqual(text[i], str(whole[i]["text"]))
                XCTAssertEqual(.array(tokens[i]), whole[i]["logprobs"]?["tokens"])
                XCTAssertEqual(.array(lps[i]), whole[i]["logprobs"]?["token_logprobs"])
                XCTAssertEqual(finish[i], whole[i]["finish_reason"])
            }
            guard case .object? = events.last?["usage"], case .array(let none)? = events.last?["choices"] else { return XCTFail("no usage chunk") }
            XCTAssertTrue(none.isEmpty)
        }
    }

    func testModelsHealthAndTokenizerEndpoints() async throws {
        let (_, tok) = Demo.loaded
        try await withServer { port, _ in
            let m = try await blocking { try RawHTTP.request(port, "GET", "/v1/models") }.json()
            XCTAssertEqual(m["object"], "list")
            if case .array(let d)? = m["data"] { XCTAssertEqual(d.first?["id"], "demo") } else { XCTFail("no data") }
            let h = try await blocking { try RawHTTP.request(port, "GET", "/health") }
            XCTAssertEqual(h.status, 200)
            let info = try await blocking { try RawHTTP.request(port, "GET", "/tokenizer_info") }.json()
            XCTAssertEqual(info["eos_token"], "<|endoftext|>")
            XCTAssertEqual(info["chat_template"], .null)
            let text = "the cat says meow .<|endoftext|>"
            let t = try await post(port, "/tokenize", #"{"prompt":"\#(text)","add_special_tokens":false}"#).json()
            XCTAssertEqual(t["tokens"], .array(tok.encode(text).map { .int($0) }))
            XCTAssertEqual(tok.encode("<|endoftext|>"), [tok.eosToken!], "lm-eval's eos_token_id is encode(eos_token)[0]")
            let d = try await post(port, "/detokenize", #"{"tokens":\#(tok.encode(text))}"#).json()
            XCTAssertEqual(d["prompt"], .string(text))
        }
    }
}

extension String { var wrapped: String { "[" + self + "]" } }
