// CompletionRequest: the body of `POST /v1/completions` (OpenAI's legacy completions, as the
// `openai` package and lm-eval's local-completions send it), checked field by field.
//
// Contract: `prompt` is a string, a list of strings, a list of token ids or a list of id lists;
// `max_tokens` >= 0 (0 only with `echo`, default 16), `temperature` in [0, 2] (default 1),
// `top_p` in (0, 1], `top_k` >= -1 (0 or -1: off), `n` in 1...128, `stop` a string or up to 16
// strings, `seed` an integer, `echo`, `logprobs` in 0...20, `stream`, `stream_options.include_usage`,
// `user`, `model` a string. Unknown fields are ignored; fields Turing cannot honour (`best_of` other
// than n, `suffix`, non-zero penalties, `logit_bias`) are refused. Every refusal is an `APIError`
// naming the field (`param`) with what was expected and what was found.

import Engine
import Tokenizers

public enum PromptInput: Sendable, Equatable {
    case text(String)
    case tokens([Int])
}

public struct CompletionRequest: Sendable {
    public var model: String?
    public var prompts: [PromptInput]
    public var maxTokens = 16
    public var temperature: Double = 1
    public var topP: Double = 1
    public var topK = 0
    public var n = 1
    public var stop: [String] = []
    public var seed: Int?
    public var echo = false
    public var logprobs: Int?
    public var stream = false
    public var includeUsage = false

    public static let maxStopStrings = 16
    public static let maxLogprobs = 20

    public init(json: JSON) throws {
        guard case .object = json else { throw APIError.invalid("the request body must be a JSON object, found \(json.typeName)") }
        let f = Fields(json)
        model = try f.string("model")
        guard let p = json["prompt"], p != .null else { throw APIError.invalid("'prompt' is required", param: "prompt") }
        prompts = try CompletionRequest.parsePrompt(p)
        if let m = try f.int("max_tokens", in: 0...Int(Int32.max)) { maxTokens = m }
        if let t = try f.number("temperature", in: 0...2) { temperature = t }
        if let t = try f.number("top_p", in: 0...1) {
            guard t > 0 else { throw APIError.invalid("'top_p' must be in (0, 1], found 0", param: "top_p") }
            topP = t
        }
        if let k = try f.int("top_k", in: -1...Int(Int32.max)) { topK = max(0, k) }
        if let v = try f.int("n", in: 1...128) { n = v }
        if let s = json["stop"], s != .null {
            switch s {
            case .string(let x): stop = [x]
            case .array(let a):
                guard a.count <= CompletionRequest.maxStopStrings else {
                    throw APIError.invalid("'stop' holds at most \(CompletionRequest.maxStopStrings) strings, found \(a.count)", param: "stop")
                }
                stop = try a.enumerated().map { i, v in
                    guard case .string(let x) = v else { throw APIError.invalid("'stop[\(i)]' must be a string, found \(v.typeName)", param: "stop") }
                    return x
                }
            default: throw APIError.invalid("'stop' must be a string or a list of strings, found \(s.typeName)", param: "stop")
            }
        }
        seed = try f.int("seed", in: Int.min...Int.max)
        if let e = try f.bool("echo") { echo = e }
        logprobs = try f.int("logprobs", in: 0...CompletionRequest.maxLogprobs)
        if let s = try f.bool("stream") { stream = s }
        if let so = json["stream_options"], so != .null {
            guard case .object = so else { throw APIError.invalid("'stream_options' must be an object, found \(so.typeName)", param: "stream_options") }
            guard stream else { throw APIError.invalid("'stream_options' is only allowed when 'stream' is true", param: "stream_options") }
            if let u = try Fields(so, prefix: "stream_options.").bool("include_usage") { includeUsage = u }
        }
        _ = try f.string("user")
        if maxTokens == 0 && !echo {
            throw APIError.invalid("'max_tokens' is 0: nothing to generate (0 is allowed with 'echo' to score the prompt)", param: "max_tokens")
        }
        if let b = try f.int("best_of", in: 1...128), b != n {
            throw APIError.invalid("'best_of' other than 'n' is not supported (found best_of \(b), n \(n))", param: "best_of")
        }
        if let s = json["suffix"], s != .null { throw APIError.invalid("'suffix' (insertion) is not supported", param: "suffix") }
        for k in ["presence_penalty", "frequency_penalty"] {
            if let v = try f.number(k, in: -2...2), v != 0 { throw APIError.invalid("'\(k)' other than 0 is not supported", param: k) }
        }
        if let lb = json["logit_bias"], lb != .null {
            guard case .object(let kv) = lb else { throw APIError.invalid("'logit_bias' must be an object, found \(lb.typeName)", param: "logit_bias") }
            if !kv.isEmpty { throw APIError.invalid("'logit_bias' is not supported", param: "logit_bias") }
        }
    }

    static func parsePrompt(_ p: JSON) throws -> [PromptInput] {
        func ids(_ a: [JSON], _ name: String) throws -> [Int] {
            try a.enumerated().map { i, v in
                guard case .int(let x) = v else { throw APIError.invalid("'\(name)[\(i)]' must be a token id (an integer), found \(v.typeName)", param: "prompt") }
                return x
            }
        }
        switch p {
        case .string(let s): return [.text(s)]
        case .array(let a):
            guard let first = a.first else { throw APIError.invalid("'prompt' is an empty list", param: "prompt") }
            switch first {
            case .int: return [.tokens(try ids(a, "prompt"))]
            case .string:
                return try a.enumerated().map { i, v in
                    guard case .string(let s) = v else { throw APIError.invalid("'prompt[\(i)]' must be a string like 'prompt[0]', found \(v.typeName)", param: "prompt") }
                    return .text(s)
                }
            case .array:
                return try a.enumerated().map { i, v in
                    guard case .array(let inner) = v else { throw APIError.invalid("'prompt[\(i)]' must be a list of token ids like 'prompt[0]', found \(v.typeName)", param: "prompt") }
                    guard !inner.isEmpty else { throw APIError.invalid("'prompt[\(i)]' is an empty list of token ids", param: "prompt") }
                    return .tokens(try ids(inner, "prompt[\(i)]"))
                }
            default:
                throw APIError.invalid("'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids; found a list of \(first.typeName)", param: "prompt")
            }
        default:
            throw APIError.invalid("'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids; found \(p.typeName)", param: "prompt")
        }
    }
}

/// Typed optional fields of a JSON object; null counts as absent.
struct Fields {
    let json: JSON
    let prefix: String
    init(_ json: JSON, prefix: String = "") { self.json = json; self.prefix = prefix }

    private func get(_ k: String) -> JSON? { if let v = json[k], v != .null { return v }; return nil }

    func string(_ k: String) throws -> String? {
        guard let v = get(k) else { return nil }
        guard case .string(let s) = v else { throw APIError.invalid("'\(prefix)\(k)' must be a string, found \(v.typeName)", param: prefix + k) }
        return s
    }
    func bool(_ k: String) throws -> Bool? {
        guard let v = get(k) else { return nil }
        guard case .bool(let b) = v else { throw APIError.invalid("'\(prefix)\(k)' must be a boolean, found \(v.typeName)", param: prefix + k) }
        return b
    }
    func int(_ k: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = get(k) else { return nil }
        let x: Int
        switch v {
        case .int(let i): x = i
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: x = Int(d)
        default: throw APIError.invalid("'\(prefix)\(k)' must be an integer, found \(v.typeName)", param: prefix + k)
        }
        guard range.contains(x) else {
            let bounds = range.upperBound == Int(Int32.max) ? ">= \(range.lowerBound)" : "in \(range.lowerBound)...\(range.upperBound)"
            throw APIError.invalid("'\(prefix)\(k)' must be \(bounds), found \(x)", param: prefix + k)
        }
        return x
    }
    func number(_ k: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = get(k) else { return nil }
        guard let d = v.doubleValue else { throw APIError.invalid("'\(prefix)\(k)' must be a number, found \(v.typeName)", param: prefix + k) }
        guard range.contains(d) else { throw APIError.invalid("'\(prefix)\(k)' must be in [\(range.lowerBound), \(range.upperBound)], found \(d)", param: prefix + k) }
        return d
    }
}
