// MegatronAPI: `PUT /api`, Megatron-LM's text generation server (megatron/inference/
// text_generation_server.py), for its CLI (tools/text_generation_cli.py) and HELM's Megatron client.
//
// Contract: the same checks in the same order with the same messages as Megatron's `put()`; where
// Megatron answers a check with the bare message and HTTP 200 (most of them), Turing answers 400 with
// `{"message": m, "error": {...}}`. Defaults as Megatron's: tokens_to_generate 64, temperature 1.0,
// top_k 0, top_p 0 (off), random_seed -1 (a random seed). The answer is Megatron's:
// `{"text": [prompt + generated], "segments": [[token strings]], "tokens": [[prompt + generated ids]],
// "logprobs": [[log-probabilities of tokens 1...]]}` (logprobs only when asked for). `add_BOS`
// prepends BOS (end-of-text for GPT-2, as Megatron's eod); `stop_on_eol` / `stop_on_double_eol` stop
// before the first "\n" / "\n\n" of the generated text (Megatron keeps that newline token).
// `beam_width` is refused (Turing has no beam search).

import Foundation
import Engine

extension TuringServer {
    func megatron(_ body: JSON) async throws -> JSON {
        func bad(_ m: String) -> APIError { APIError.invalid(m) }
        guard case .object = body else { throw bad("prompts argument required") }
        guard let promptsJSON = body["prompts"] else { throw bad("prompts argument required") }
        if body["max_len"] != nil { throw bad("max_len is no longer used.  Replace with tokens_to_generate") }
        if body["sentences"] != nil { throw bad("sentences is no longer used.  Replace with prompts") }
        guard case .array(let promptItems) = promptsJSON else { throw bad("prompts is not a list of strings") }
        if promptItems.isEmpty { throw bad("prompts is empty") }
        if promptItems.count > 128 { throw bad("Maximum number of prompts is 128") }
        let prompts: [String] = try promptItems.map { v in
            guard case .string(let s) = v else { throw bad("prompts is not a list of strings") }
            return s
        }
        // Python's isinstance(x, int) holds for booleans too; Megatron's checks inherit that.
        func pyInt(_ v: JSON) -> Int? { switch v { case .int(let i): return i; case .bool(let b): return b ? 1 : 0; default: return nil } }
        func pyNumber(_ v: JSON) -> Double? { if case .double(let d) = v { return d }; return pyInt(v).map(Double.init) }

        var tokensToGenerate = 64
        if let v = body["tokens_to_generate"] {
            guard let i = pyInt(v) else { throw bad("tokens_to_generate must be an integer greater than 0") }
            if i < 0 { throw bad("tokens_to_generate must be an integer greater than or equal to 0") }
            tokensToGenerate = i
        }
        var logprobs = false
        if let v = body["logprobs"] {
            guard case .bool(let b) = v else { throw bad("logprobs must be a boolean value") }
            logprobs = b
        }
        if tokensToGenerate == 0 && !logprobs { throw bad("tokens_to_generate=0 implies logprobs should be True") }
        var temperature = 1.0
        if let v = body["temperature"] {
            guard let t = pyNumber(v) else { throw bad("temperature must be a positive number less than or equal to 1000.0") }
            if !(0.0 < t && t <= 100.0) { throw bad("temperature must be a positive number less than or equal to 100.0") }
            temperature = t
        }
        var topK = 0
        if let v = body["top_k"] {
            guard let k = pyInt(v) else { throw bad("top_k must be an integer equal to or greater than 0 and less than or equal to 1000") }
            if !(0 <= k && k <= 1000) { throw bad("top_k must be equal to or greater than 0 and less than or equal to 1000") }
            topK = k
        }
        var topP = 0.0
        if let v = body["top_p"] {
            guard case .double(let p) = v else { throw bad("top_p must be a positive float less than or equal to 1.0") }
            if p > 0.0 && topK > 0 { throw bad("cannot set both top-k and top-p samplings.") }
            if !(0 <= p && p <= 1.0) { throw bad("top_p must be less than or equal to 1.0") }
            topP = p
        }
        if let v = body["top_p_decay"] {
            guard case .double(let d) = v else { throw bad("top_p_decay must be a positive float less than or equal to 1.0") }
            if topP == 0.0 { throw bad("top_p_decay cannot be set without top_p") }
            if !(0 <= d && d <= 1.0) { throw bad("top_p_decay must be less than or equal to 1.0") }
            if d != 0 { throw bad("top_p_decay is not supported by Turing") }
        }
        if let v = body["top_p_bound"] {
            guard case .double(let d) = v else { throw bad("top_p_bound must be a positive float less than or equal to top_p") }
            if topP == 0.0 { throw bad("top_p_bound cannot be set without top_p") }
            if !(0.0 < d && d <= topP) { throw bad("top_p_bound must be greater than 0 and less than top_p") }
            throw bad("top_p_bound is not supported by Turing")
        }
        var addBOS = false
        if let v = body["add_BOS"] {
            guard case .bool(let b) = v else { throw bad("add_BOS must be a boolean value") }
            addBOS = b
        }
        if prompts.contains(where: { $0.isEmpty }) && !addBOS { throw bad("Empty prompts require add_BOS=true") }
        var stops: [String] = []
        if let v = body["stop_on_double_eol"] {
            guard case .bool(let b) = v else { throw bad("stop_on_double_eol must be a boolean value") }
            if b { stops.append("\n\n") }
        }
        if let v = body["stop_on_eol"] {
            guard case .bool(let b) = v else { throw bad("stop_on_eol must be a boolean value") }
            if b { stops = ["\n"] }
        }
        if let v = body["prevent_newline_after_colon"] {
            guard case .bool(let b) = v else { throw bad("prevent_newline_after_colon must be a boolean value") }
            if b { throw bad("prevent_newline_after_colon is not supported by Turing") }
        }
        var seed = -1
        if let v = body["random_seed"] {
            guard let s = pyInt(v) else { throw bad("random_seed must be integer") }
            if s < 0 { throw bad("random_seed must be a positive integer") }
            seed = s
        }
        if let v = body["no_log"] { guard case .bool = v else { throw bad("no_log must be a boolean value") } }
        if let v = body["beam_width"] {
            guard let w = pyInt(v) else { throw bad("beam_width must be integer") }
            if w < 1 { throw bad("beam_width must be an integer > 1") }
            if prompts.count > 1 { throw bad("When doing beam_search, batch size must be 1") }
            throw bad("beam_width (beam search) is not supported by Turing")
        }
        if let v = body["stop_token"] { guard pyInt(v) != nil else { throw bad("stop_token must be an integer") } }
        if let v = body["length_penalty"] { guard case .double = v else { throw bad("length_penalty must be a float") } }

        let P = config.maxPositions
        let bos = tokenizer.bosToken ?? tokenizer.eosToken ?? prefix
        var ids: [[Int]] = []
        for (i, p) in prompts.enumerated() {
            let t = (addBOS ? [bos] : []) + tokenizer.encode(p)
            guard !t.isEmpty else { throw bad("prompt \(i) encodes to no tokens") }
            guard t.count <= P else { throw bad("prompt \(i) has \(t.count) tokens; this model's maximum context length is \(P) tokens") }
            ids.append(t)
        }
        let base = seed >= 0 ? UInt64(seed) : UInt64.random(in: 1...UInt64.max)
        let sampling = SamplingParams(temperature: Float(temperature), topK: topK, topP: topP > 0 ? Float(topP) : 1, seed: base)
        let specs = ids.map { SequenceSpec(prompt: $0, maxTokens: tokensToGenerate, sampling: sampling, stopTokens: stopTokens,
                                           stopStrings: stops, promptLogprobs: logprobs, topLogprobs: logprobs ? 0 : nil) }
        let streams = try engine.submit(specs)
        var texts: [JSON] = [], segments: [JSON] = [], tokens: [JSON] = [], lps: [JSON] = []
        for (i, s) in streams.enumerated() {
            var text = prompts[i], all = ids[i], lp: [JSON] = []
            for await e in s {
                switch e {
                case .prompt(let list): lp += list.dropFirst().map { .double($0.logprob!) }
                case .token(let st, let t, _):
                    all.append(st.id); text += t
                    if let l = st.logprob { lp.append(.double(l)) }
                case .finished(_, let t): text += t
                case .failed(let m): throw APIError(.internalServerError, "generation failed: \(m)")
                }
            }
            texts.append(.string(text))
            segments.append(.array(all.map { .string(tokenDisplay(tokenizer, $0)) }))
            tokens.append(.array(all.map { .int($0) }))
            lps.append(.array(lp))
        }
        var out: [(String, JSON)] = [("text", .array(texts)), ("segments", .array(segments))]
        if logprobs { out.append(("logprobs", .array(lps))) }
        out.append(("tokens", .array(tokens)))
        return .object(out)
    }
}
