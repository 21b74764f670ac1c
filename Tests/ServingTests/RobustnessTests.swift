// Bad input on every endpoint (4xx with an OpenAI-style error body, and the server goes on serving),
// Megatron's PUT /api (its answer's shape and its validation messages), the bearer token, a full
// queue (503 + Retry-After), and a client that disconnects mid-stream (its sequence and cache freed).

import Foundation
import XCTest
import Engine
import Tokenizers
@testable import Serving

final class RobustnessTests: XCTestCase {
    func testBadInputIs4xxWithErrorBodyAndServingGoesOn() async throws {
        typealias Case = (method: String, path: String, body: String?, status: Int, says: String)
        let long = "[" + Array(repeating: "5", count: 200).joined(separator: ",") + "]"
        let cases: [Case] = [
            ("POST", "/v1/completions", "{\"prompt\": \"x\",", 400, "not valid JSON"),
            ("POST", "/v1/completions", "", 400, "not valid JSON"),
            ("POST", "/v1/completions", "[1, 2]", 400, "must be a JSON object"),
            ("POST", "/v1/completions", "{\"max_tokens\": 3}", 400, "'prompt' is required"),
            ("POST", "/v1/completions", "{\"prompt\": 5}", 400, "'prompt' must be"),
            ("POST", "/v1/completions", "{\"prompt\": []}", 400, "empty list"),
            ("POST", "/v1/completions", "{\"prompt\": [1, \"a\"]}", 400, "prompt[1]"),
            ("POST", "/v1/completions", "{\"prompt\": [[1, 2], []]}", 400, "empty list of token ids"),
            ("POST", "/v1/completions", "{\"prompt\": [[1, 2], 3]}", 400, "prompt[1]"),
            ("POST", "/v1/completions", "{\"prompt\": [1, 99999]}", 400, "outside the model's vocabulary"),
            ("POST", "/v1/completions", "{\"prompt\": [-1]}", 400, "outside the model's vocabulary"),
            ("POST", "/v1/completions", "{\"prompt\": \(long)}", 400, "maximum context length"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": -1}", 400, "'max_tokens' must be >= 0"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": \"ten\"}", 400, "'max_tokens' must be an integer"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 0}", 400, "allowed with 'echo'"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"temperature\": 2.5}", 400, "'temperature' must be in"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"temperature\": \"hot\"}", 400, "'temperature' must be a number"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"top_p\": 0}", 400, "'top_p'"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"top_p\": 1.5}", 400, "'top_p' must be in"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"n\": 0}", 400, "'n' must be in 1...128"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"n\": 1.5}", 400, "'n' must be an integer"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 21}", 400, "'logprobs' must be in 0...20"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"echo\": \"yes\"}", 400, "'echo' must be a boolean"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"stream\": 1}", 400, "'stream' must be a boolean"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"stop\": 7}", 400, "'stop' must be a string or a list"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"stop\": [\"a\", 1]}", 400, "'stop[1]' must be a string"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"seed\": \"s\"}", 400, "'seed' must be an integer"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", 400, "only allowed when 'stream'"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"best_of\": 3}", 400, "'best_of'"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"model\": 3}", 400, "'model' must be a string"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\", \"n\": 128, \"max_tokens\": 1}", 400, "at most"),
            ("POST", "/v1/completions", String(repeating: "[", count: 100) + String(repeating: "]", count: 100), 400, "nesting deeper"),
            ("POST", "/v1/completions", "{\"prompt\": \"\\ud800x\", \"max_tokens\": \"a\"}", 400, "'max_tokens'"),
            ("POST", "/v1/completions", "{\"prompt\": \"x\"} trailing", 400, "unexpected data"),
            ("POST", "/tokenize", "{}", 400, "'prompt' (a string) is required"),
            ("POST", "/tokenize", "{\"prompt\": [1]}", 400, "'prompt' must be a string"),
            ("POST", "/detokenize", "{\"tokens\": \"abc\"}", 400, "'tokens' (a list of token ids) is required"),
            ("POST", "/detokenize", "{\"tokens\": [1, 1e3]}", 400, "'tokens[1]' must be a token id"),
            ("POST", "/detokenize", "{\"tokens\": [100000]}", 400, "outside the tokenizer's vocabulary"),
            ("GET", "/v1/nothing", nil, 404, "no route for GET /v1/nothing"),
            ("DELETE", "/v1/completions", nil, 404, "no route"),
            ("PUT", "/api", "not json", 400, "Failed to decode JSON object"),
        ]
        XCTAssertGreaterThanOrEqual(cases.count, 25)
        try await withServer({ $0.maxBatch = 2; $0.maxQueue = 4 }) { port, _ in
            for c in cases {
                let r = try await blocking { try RawHTTP.request(port, c.method, c.path, body: c.body.map { Array($0.utf8) }, headers: ["Content-Type": "application/json"]) }
                XCTAssertEqual(r.status, c.status, "\(c.method) \(c.path) \(c.body ?? ""): \(r.text)")
                let e = try r.json()["error"]
                XCTAssertTrue(str(e?["message"])?.contains(c.says) == true, "\(c.body ?? c.path): expected '\(c.says)' in \(r.text)")
                XCTAssertNotNil(str(e?["type"]), r.text)
                XCTAssertNotNil(e?["param"]); XCTAssertNotNil(e?["code"])
            }
            // too large a body: 413
            let big = try await blocking { try RawHTTP.request(port, "POST", "/v1/completions", body: [UInt8](repeating: 0x20, count: (16 << 20) + 10)) }
            XCTAssertEqual(big.status, 413, big.text)
            // and the server still answers
            let ok = try choices(try await post(port, "/v1/completions", #"{"prompt":"the cat","max_tokens":3,"temperature":0}"#))
            XCTAssertEqual(ok.count, 1)
        }
    }

    func testMegatronAPI() async throws {
        let (_, tok) = Demo.loaded
        try await withServer { port, _ in
            func put(_ body: String) async throws -> HTTPResult { try await blocking { try RawHTTP.request(port, "PUT", "/api", json: body) } }
            // tools/text_generation_cli.py's request
            let r = try await put(#"{"prompts": ["the cat"], "tokens_to_generate": 6, "top_k": 1}"#)
            XCTAssertEqual(r.status, 200, r.text)
            let j = try r.json()
            guard case .array(let texts)? = j["text"], case .array(let toks)? = j["tokens"], case .array(let segs)? = j["segments"] else { return XCTFail(r.text) }
            XCTAssertEqual(str(texts[0]), "the cat" + (try generateText("the cat", maxTokens: 6, sampling: SamplingParams(temperature: 1, topK: 1))))
            guard case .array(let t0) = toks[0], case .array(let s0) = segs[0] else { return XCTFail(r.text) }
            XCTAssertEqual(Array(t0.prefix(tok.encode("the cat").count)), tok.encode("the cat").map { .int($0) })
            XCTAssertEqual(s0.count, t0.count)
            XCTAssertNil(j["logprobs"])
            // logprobs: prompt tokens after the first, then generated; equal to the completions echo log-probabilities
            let l = try await put(#"{"prompts": ["the cat says", "a dog"], "tokens_to_generate": 0, "logprobs": true}"#).json()
            let echo = try choices(try await post(port, "/v1/completions", #"{"prompt":["the cat says","a dog"],"max_tokens":0,"echo":true,"logprobs":0}"#))
            for i in 0..<2 {
                guard case .array(let lp)? = l["logprobs"], case .array(let e)? = echo[i]["logprobs"]?["token_logprobs"] else { return XCTFail("\(l)") }
                XCTAssertEqual(lp[i], .array(Array(e.dropFirst())))
            }
            // HELM's Megatron client: prompts, tokens_to_generate, temperature, top_k
            let helm = try await put(#"{"prompts": ["the cow"], "tokens_to_generate": 5, "temperature": 0.7, "top_k": 3, "random_seed": 4}"#)
            XCTAssertEqual(helm.status, 200)
            // Megatron's validation messages (Megatron answers most with HTTP 200; Turing with 400)
            let checks: [(String, String)] = [
                (#"{"tokens_to_generate": 3}"#, "prompts argument required"),
                (#"{"prompts": ["a"], "max_len": 3}"#, "max_len is no longer used.  Replace with tokens_to_generate"),
                (#"{"prompts": ["a"], "sentences": ["a"]}"#, "sentences is no longer used.  Replace with prompts"),
                (#"{"prompts": "a"}"#, "prompts is not a list of strings"),
                (#"{"prompts": []}"#, "prompts is empty"),
                ("{\"prompts\": [" + Array(repeating: "\"a\"", count: 129).joined(separator: ",") + "]}", "Maximum number of prompts is 128"),
                (#"{"prompts": ["a"], "tokens_to_generate": 2.5}"#, "tokens_to_generate must be an integer greater than 0"),
                (#"{"prompts": ["a"], "tokens_to_generate": -1}"#, "tokens_to_generate must be an integer greater than or equal to 0"),
                (#"{"prompts": ["a"], "logprobs": 1}"#, "logprobs must be a boolean value"),
                (#"{"prompts": ["a"], "tokens_to_generate": 0}"#, "tokens_to_generate=0 implies logprobs should be True"),
                (#"{"prompts": ["a"], "temperature": "x"}"#, "temperature must be a positive number less than or equal to 1000.0"),
                (#"{"prompts": ["a"], "temperature": 0}"#, "temperature must be a positive number less than or equal to 100.0"),
                (#"{"prompts": ["a"], "top_k": 1001}"#, "top_k must be equal to or greater than 0 and less than or equal to 1000"),
                (#"{"prompts": ["a"], "top_k": 0.5}"#, "top_k must be an integer equal to or greater than 0 and less than or equal to 1000"),
                (#"{"prompts": ["a"], "top_p": 1}"#, "top_p must be a positive float less than or equal to 1.0"),
                (#"{"prompts": ["a"], "top_k": 2, "top_p": 0.5}"#, "cannot set both top-k and top-p samplings."),
                (#"{"prompts": ["a"], "top_p": 1.5}"#, "top_p must be less than or equal to 1.0"),
                (#"{"prompts": ["a"], "add_BOS": 1}"#, "add_BOS must be a boolean value"),
                (#"{"prompts": [""]}"#, "Empty prompts require add_BOS=true"),
                (#"{"prompts": ["a"], "stop_on_eol": "no"}"#, "stop_on_eol must be a boolean value"),
                (#"{"prompts": ["a"], "random_seed": -2}"#, "random_seed must be a positive integer"),
                (#"{"prompts": ["a"], "random_seed": "r"}"#, "random_seed must be integer"),
                (#"{"prompts": ["a", "b"], "beam_width": 2}"#, "When doing beam_search, batch size must be 1"),
            ]
            for (body, message) in checks {
                let r = try await put(body)
                XCTAssertEqual(r.status, 400, body)
                XCTAssertEqual(try r.json()["message"], .string(message), body)   // what tools/text_generation_cli.py prints
                XCTAssertEqual(try r.json()["error"]?["message"], .string(message), body)
            }
            let bos = try await put(#"{"prompts": [""], "add_BOS": true, "tokens_to_generate": 2}"#)
            XCTAssertEqual(bos.status, 200)
        }
    }

    func testAPIKey() async throws {
        try await withServer({ $0.apiKey = "sekrit" }) { port, _ in
            let body = #"{"prompt":"the cat","max_tokens":2}"#
            let none = try await post(port, "/v1/completions", body)
            XCTAssertEqual(none.status, 401); XCTAssertEqual(try none.json()["error"]?["code"], "invalid_api_key")
            let wrong = try await post(port, "/v1/completions", body, headers: ["Authorization": "Bearer wrong"])
            XCTAssertEqual(wrong.status, 401)
            let models = try await blocking { try RawHTTP.request(port, "GET", "/v1/models") }
            XCTAssertEqual(models.status, 401)
            let right = try await post(port, "/v1/completions", body, headers: ["Authorization": "Bearer sekrit"])
            XCTAssertEqual(right.status, 200)
            let health = try await blocking { try RawHTTP.request(port, "GET", "/health") }
            XCTAssertEqual(health.status, 200)
        }
    }

    func testFullQueueIs503WithRetryAfter() async throws {
        try await withServer({ $0.maxBatch = 1; $0.maxQueue = 0 }) { port, server in
            server.engine.setPaused(true)
            let first = Task { try await post(port, "/v1/completions", #"{"prompt":"the cat","max_tokens":4,"temperature":0}"#) }
            while server.engine.stats.queued == 0 { try await Task.sleep(for: .milliseconds(5)) }
            let second = try await post(port, "/v1/completions", #"{"prompt":"the cow","max_tokens":4}"#)
            XCTAssertEqual(second.status, 503, second.text)
            XCTAssertEqual(second.headers["retry-after"], "1")
            XCTAssertEqual(try second.json()["error"]?["type"], "server_overloaded")
            server.engine.setPaused(false)
            let firstStatus = try await first.value.status
            XCTAssertEqual(firstStatus, 200)
        }
    }

    func testClientDisconnectMidStreamFreesTheSequence() async throws {
        try await withServer { port, server in
            let c = try RawHTTP(port: port)
            let body = Array(#"{"prompt":"the cat","max_tokens":120,"temperature":1,"seed":1,"stream":true}"#.utf8)
            c.send(RawHTTP.requestBytes("POST", "/v1/completions", body: body, headers: ["Content-Type": "application/json"]))
            server.engine.afterStep = { usleep(5000) }   // 120 tokens then take >= 0.6 s
            var got: [UInt8] = []
            while RawHTTP.findSeq(got, Array("data: ".utf8), from: 0) == nil {
                let b = try await blocking { c.receive() }; XCTAssertFalse(b.isEmpty); got += b
            }
            XCTAssertEqual(server.engine.stats.live, 1, "mid-stream: the sequence is active and holds its cache")
            shutdown(c.fd, Int32(SHUT_RDWR))
            var waited = 0
            while server.engine.stats.live > 0 && waited < 500 { try await Task.sleep(for: .milliseconds(10)); waited += 1 }
            let s = server.engine.stats
            XCTAssertEqual(s.live, 0, "the dropped sequence's cache is freed")
            XCTAssertEqual(s.cancelled, 1, "dropped before its 120 tokens")
            server.engine.afterStep = nil
            let ok = try choices(try await post(port, "/v1/completions", #"{"prompt":"the cat","max_tokens":3,"temperature":0}"#))
            XCTAssertEqual(ok.count, 1)
        }
    }

    func testEngineQueueIsAllOrNothing() throws {
        let (model, tok) = Demo.loaded
        let e = BatchEngine(model: model, tokenizer: tok, maxBatch: 1, maxQueue: 1)
        let spec = SequenceSpec(prompt: tok.encode("the cat"), maxTokens: 3, sampling: SamplingParams(), stopTokens: [])
        let a = try e.submit([spec, spec])            // one slot + one queue place
        XCTAssertThrowsError(try e.submit([spec])) { XCTAssertEqual(($0 as? APIError)?.status, .serviceUnavailable); XCTAssertEqual(($0 as? APIError)?.retryAfter, 1) }
        XCTAssertThrowsError(try e.submit([spec, spec, spec])) { XCTAssertEqual(($0 as? APIError)?.status, .badRequest) }
        e.start()
        e.shutdown()                                  // finishes what is queued first
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(e.stats.live, 0)
    }
}
