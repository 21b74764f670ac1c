// Completions: runs a checked `CompletionRequest` on the engine and builds OpenAI's answer, whole or
// as server-sent events.
//
// Contract: choices are prompt-major (`index = prompt * n + j`); choice j of a prompt samples with
// seed + j (so choice 0 is `turing generate --seed`'s text). With `logprobs`, `tokens`,
// `token_logprobs`, `top_logprobs` and `text_offset` hold one entry per echoed prompt token (the
// first with null log-probability) and per generated token, end-of-text included (its text is not
// in `text`); `top_logprobs[i]` holds the `logprobs` most likely tokens and the actual one, so
// lm-eval's is_greedy test (`token_logprob == max(top_logprobs)`) sees the argmax. Offsets count
// characters from the start of the prompt.

import Foundation
import Hummingbird
import Engine
import Tokenizers

struct ChoiceBuilder {
    let index: Int
    let tok: Tokenizer
    let wantLogprobs: Bool
    var text = ""
    var tokens: [JSON] = [], tokenLogprobs: [JSON] = [], topLogprobs: [JSON] = [], offsets: [JSON] = []
    var chars = 0                    // characters of prompt + generated text so far (offset of the next token)
    var emitted = 0                  // characters of `text` already handed out (stream chunks)
    var completionTokens = 0
    var finish: FinishReason?

    init(index: Int, tok: Tokenizer, prompt: [Int], promptText: String, echo: Bool, wantLogprobs: Bool) {
        self.index = index; self.tok = tok; self.wantLogprobs = wantLogprobs
        if echo { text = promptText }
        if !echo { chars = promptText.unicodeScalars.count }
    }

    /// Applies one event; returns the text and the logprobs entries it adds (for a stream chunk).
    mutating func apply(_ e: SequenceEvent) throws -> (String, JSON?) {
        let t0 = tokens.count
        switch e {
        case .prompt(let list):
            for st in list { add(st) }
        case .token(let st, let t, _):
            completionTokens += 1
            text += t
            if wantLogprobs { add(st) }
        case .finished(let r, let t):
            text += t; finish = r
        case .failed(let m):
            throw APIError(.internalServerError, "generation failed: \(m)")
        }
        let delta = String(text.dropFirst(emitted))
        emitted = text.count
        guard wantLogprobs else { return (delta, nil) }
        return (delta, logprobs(from: t0))
    }

    private mutating func add(_ st: ScoredToken) {
        tokens.append(.string(tokenDisplay(tok, st.id)))
        offsets.append(.int(chars))
        chars += tok.decodeBytes([st.id]).reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
        guard let lp = st.logprob else { tokenLogprobs.append(.null); topLogprobs.append(.null); return }
        tokenLogprobs.append(.double(lp))
        var top = st.top
        if !top.contains(where: { $0.token == st.id }) { top.append(TokenLogprob(token: st.id, logprob: lp)) }
        top.sort { $0.logprob > $1.logprob }
        topLogprobs.append(.object(top.map { (tokenDisplay(tok, $0.token), .double($0.logprob)) }))
    }

    func logprobs(from k: Int = 0) -> JSON {
        .object([("tokens", .array(Array(tokens[k...]))), ("token_logprobs", .array(Array(tokenLogprobs[k...]))),
                 ("top_logprobs", .array(Array(topLogprobs[k...]))), ("text_offset", .array(Array(offsets[k...])))])
    }

    var json: JSON {
        .object([("text", .string(text)), ("index", .int(index)), ("logprobs", wantLogprobs ? logprobs() : .null),
                 ("finish_reason", finish.map { .string($0.rawValue) } ?? .null)])
    }
}

extension TuringServer {
    /// Token ids of each prompt, checked against the model.
    func promptIDs(_ prompts: [PromptInput]) throws -> [(ids: [Int], text: String)] {
        let P = config.maxPositions, V = config.vocabSize
        return try prompts.enumerated().map { i, p in
            var ids: [Int], text: String
            switch p {
            case .text(let s):
                ids = tokenizer.encode(s); text = s
                if ids.isEmpty { ids = [prefix] }
            case .tokens(let t):
                if let bad = t.first(where: { $0 < 0 || $0 >= V }) {
                    throw APIError.invalid("prompt \(i): token id \(bad) is outside the model's vocabulary [0, \(V))", param: "prompt")
                }
                ids = t; text = tokenizer.decode(t)
            }
            guard ids.count <= P else {
                var e = APIError.invalid("prompt \(i) has \(ids.count) tokens; this model's maximum context length is \(P) tokens", param: "prompt")
                e.code = "context_length_exceeded"
                throw e
            }
            return (ids, text)
        }
    }

    func completions(_ body: JSON) async throws -> Response {
        let req = try CompletionRequest(json: body)
        let prompts = try promptIDs(req.prompts)
        let baseSeed = req.seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 1...UInt64.max)
        var specs: [SequenceSpec] = []
        var builders: [ChoiceBuilder] = []
        for (p, (ids, text)) in prompts.enumerated() {
            for j in 0..<req.n {
                let sampling = SamplingParams(temperature: Float(req.temperature), topK: req.topK, topP: Float(req.topP), seed: baseSeed &+ UInt64(j))
                specs.append(SequenceSpec(prompt: ids, maxTokens: req.maxTokens, sampling: sampling, stopTokens: stopTokens,
                                          stopStrings: req.stop, promptLogprobs: req.echo && req.logprobs != nil, topLogprobs: req.logprobs))
                builders.append(ChoiceBuilder(index: p * req.n + j, tok: tokenizer, prompt: ids, promptText: text, echo: req.echo, wantLogprobs: req.logprobs != nil))
            }
        }
        let streams = try engine.submit(specs)
        let id = "cmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let promptTokens = prompts.reduce(0) { $0 + $1.ids.count }
        let model = modelName
        @Sendable func usage(_ b: [ChoiceBuilder]) -> JSON {
            let c = b.reduce(0) { $0 + $1.completionTokens }
            return .object([("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(c)), ("total_tokens", .int(promptTokens + c))])
        }
        if !req.stream {
            for (i, s) in streams.enumerated() { for await e in s { _ = try builders[i].apply(e) } }
            return jsonResponse(.object([("id", .string(id)), ("object", "text_completion"), ("created", .int(created)), ("model", .string(model)),
                                         ("choices", .array(builders.map(\.json))), ("usage", usage(builders))]))
        }
        let includeUsage = req.includeUsage, initial = builders
        let sse = ResponseBody { writer in
            var b = initial
            let (merged, mcont) = AsyncStream<(Int, SequenceEvent)>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, s) in streams.enumerated() {
                    group.addTask { for await e in s { mcont.yield((i, e)) } }
                }
                var open = streams.count
                for await (i, e) in merged {
                    let (text, lp) = try b[i].apply(e)
                    var finish: JSON = .null
                    if case .finished(let r, _) = e { finish = .string(r.rawValue); open -= 1 }
                    if text.isEmpty && lp == nil && finish == .null { continue }
                    let choice: JSON = .object([("text", .string(text)), ("index", .int(b[i].index)), ("logprobs", lp ?? .null), ("finish_reason", finish)])
                    let chunk: JSON = .object([("id", .string(id)), ("object", "text_completion"), ("created", .int(created)), ("model", .string(model)),
                                               ("choices", .array([choice]))])
                    try await writer.write(ByteBuffer(string: "data: \(chunk.serialized)\n\n"))
                    if open == 0 { break }
                }
                mcont.finish()
                group.cancelAll()
            }
            if includeUsage {
                let chunk: JSON = .object([("id", .string(id)), ("object", "text_completion"), ("created", .int(created)), ("model", .string(model)),
                                           ("choices", .array([])), ("usage", usage(b))])
                try await writer.write(ByteBuffer(string: "data: \(chunk.serialized)\n\n"))
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: sse)
    }
}
