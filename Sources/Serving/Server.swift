// TuringServer: the HTTP front of `turing serve` on Hummingbird 2.
//
// Routes: POST /v1/completions (OpenAI legacy completions), GET /v1/models, GET /health,
// lm-eval's remote tokenizer (GET /tokenizer_info, POST /tokenize, POST /detokenize), and Megatron's
// PUT /api. Every failure is an OpenAI-style `{"error": {message, type, param, code}}` with a 4xx
// status (malformed JSON, wrong types, values out of range, prompts longer than the model's
// positions, bodies over `maxBodyBytes` (413), unknown routes (404)), a full queue is 503 with
// Retry-After, and with an API key every route but /health needs `Authorization: Bearer KEY` (401).
// Generation runs on the `BatchEngine` thread; handlers only parse, queue and write.

import Foundation
import Hummingbird
import Engine
import Model
import Tokenizers
import Evaluation

public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    public var modelName = "turing"
    public var apiKey: String?
    public var maxBatch = 16
    public var maxQueue = 256
    public var maxBodyBytes = 16 << 20
    public init() {}
}

public final class TuringServer: @unchecked Sendable {
    public let engine: BatchEngine
    public let tokenizer: Tokenizer
    public let config: ModelConfig
    public let options: ServerOptions
    let prefix: Int
    let stopTokens: Set<Int>
    let startTime = Int(Date().timeIntervalSince1970)
    var modelName: String { options.modelName }

    public init(model: CausalLM, tokenizer: Tokenizer, options: ServerOptions) throws {
        self.tokenizer = tokenizer; self.config = model.config; self.options = options
        prefix = try prefixToken(tokenizer, model.config)
        stopTokens = defaultStopTokens(tokenizer)
        engine = BatchEngine(model: model, tokenizer: tokenizer, maxBatch: options.maxBatch, maxQueue: options.maxQueue)
    }

    /// The router with every route and the error / auth middleware.
    public func router() -> Router<BasicRequestContext> {
        let r = Router(context: BasicRequestContext.self)
        r.middlewares.add(ErrorMiddleware(apiKey: options.apiKey))
        let limit = options.maxBodyBytes
        r.post("/v1/completions") { req, _ in try await self.completions(try await Self.body(req, limit)) }
        r.get("/v1/models") { _, _ in
            jsonResponse(.object([("object", "list"), ("data", .array([.object([
                ("id", .string(self.modelName)), ("object", "model"), ("created", .int(self.startTime)), ("owned_by", "turing"),
                ("max_model_len", .int(self.config.maxPositions))])]))]))
        }
        r.get("/health") { _, _ in
            let s = self.engine.stats
            return jsonResponse(.object([("status", "ok"), ("active", .int(s.active)), ("queued", .int(s.queued)), ("live", .int(s.live))]))
        }
        r.get("/tokenizer_info") { _, _ in
            let eos = self.tokenizer.eosToken.flatMap { self.tokenizer.tokenString($0) }
            let bos = self.tokenizer.bosToken.flatMap { self.tokenizer.tokenString($0) }
            return jsonResponse(.object([("eos_token", eos.map { .string($0) } ?? .null), ("bos_token", bos.map { .string($0) } ?? .null),
                                         ("pad_token", .null), ("chat_template", .null), ("model_max_length", .int(self.config.maxPositions)),
                                         ("vocab_size", .int(self.tokenizer.vocabSize))]))
        }
        r.post("/tokenize") { req, _ in
            let body = try await Self.body(req, limit)
            guard case .object = body else { throw APIError.invalid("the request body must be a JSON object, found \(body.typeName)") }
            let f = Fields(body)
            guard let prompt = try f.string("prompt") else { throw APIError.invalid("'prompt' (a string) is required", param: "prompt") }
            var ids = self.tokenizer.encode(prompt)
            if try f.bool("add_special_tokens") == true, let b = self.tokenizer.bosToken, self.tokenizer.eosToken != b { ids.insert(b, at: 0) }
            return jsonResponse(.object([("tokens", .array(ids.map { .int($0) })), ("count", .int(ids.count)),
                                         ("max_model_len", .int(self.config.maxPositions))]))
        }
        r.post("/detokenize") { req, _ in
            let body = try await Self.body(req, limit)
            guard case .object = body else { throw APIError.invalid("the request body must be a JSON object, found \(body.typeName)") }
            guard case .array(let a)? = body["tokens"] else {
                throw APIError.invalid("'tokens' (a list of token ids) is required, found \(body["tokens"]?.typeName ?? "nothing")", param: "tokens")
            }
            let ids: [Int] = try a.enumerated().map { i, v in
                guard case .int(let x) = v else { throw APIError.invalid("'tokens[\(i)]' must be a token id (an integer), found \(v.typeName)", param: "tokens") }
                guard x >= 0 && x < self.tokenizer.vocabSize else {
                    throw APIError.invalid("'tokens[\(i)]' = \(x) is outside the tokenizer's vocabulary [0, \(self.tokenizer.vocabSize))", param: "tokens")
                }
                return x
            }
            return jsonResponse(.object([("prompt", .string(self.tokenizer.decode(ids)))]))
        }
        r.put("/api") { req, _ in
            do {
                let body: JSON
                do { body = try await Self.body(req, limit) } catch let e as APIError where e.status == .badRequest {
                    throw APIError.invalid("Failed to decode JSON object: \(e.message)")
                }
                return jsonResponse(try await self.megatron(body))
            } catch let e as APIError {
                return jsonResponse(e.body(megatron: true), status: e.status, retryAfter: e.retryAfter)
            }
        }
        return r
    }

    static func body(_ req: Request, _ limit: Int) async throws -> JSON {
        let buf: ByteBuffer
        do { buf = try await req.body.collect(upTo: limit) } catch {
            throw APIError(.contentTooLarge, "the request body is larger than \(limit) bytes")
        }
        do { return try JSON.parse(Array(buf.readableBytesView)) } catch let e as JSONParseError {
            throw APIError.invalid("the request body is not valid JSON: \(e)")
        }
    }

    /// Serves until SIGINT/SIGTERM (or `ServiceGroup` shutdown): then stops accepting, lets in-flight
    /// requests finish, and stops the engine. `onListening(port)` runs once the socket is bound.
    public func run(onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }) async throws {
        engine.start()
        defer { engine.shutdown() }
        let host = options.host
        // Hummingbird logs at LOG_LEVEL (default info, one line per request): keep it to warnings unless asked
        if ProcessInfo.processInfo.environment["LOG_LEVEL"] == nil { setenv("LOG_LEVEL", "warning", 1) }
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: options.port), serverName: "turing"),
                              onServerRunning: { ch in await onListening(host, ch.localAddress?.port ?? 0) })
        try await app.runService()   // SIGTERM and SIGINT shut it down gracefully
    }
}

/// End-of-text ends a generation (and BOS for llama2.c tokenizers, as run.c stops on it).
public func defaultStopTokens(_ tok: Tokenizer) -> Set<Int> {
    Set([tok.eosToken, tok is Llama2cTokenizer ? tok.bosToken : nil].compactMap { $0 })
}

func jsonResponse(_ j: JSON, status: HTTPResponse.Status = .ok, retryAfter: Int? = nil) -> Response {
    var h: HTTPFields = [.contentType: "application/json"]
    if let retryAfter { h[.retryAfter] = String(retryAfter) }
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: j.serialized)))
}

/// Turns every error into an OpenAI-style JSON answer, and checks the bearer token.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let apiKey: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            if let apiKey, request.uri.path != "/health" {
                guard let auth = request.headers[.authorization] else {
                    throw APIError(.unauthorized, "missing API key: send the header 'Authorization: Bearer KEY'", code: "invalid_api_key")
                }
                guard auth == "Bearer \(apiKey)" else { throw APIError(.unauthorized, "incorrect API key provided", code: "invalid_api_key") }
            }
            return try await next(request, context)
        } catch let e as APIError {
            return jsonResponse(e.body(megatron: request.uri.path == "/api"), status: e.status, retryAfter: e.retryAfter)
        } catch let e as HTTPResponseError {
            let msg = e.status == .notFound ? "no route for \(request.method) \(request.uri.path)" : "\(e.status.reasonPhrase) (\(request.method) \(request.uri.path))"
            return jsonResponse(APIError(e.status, msg).body(), status: e.status)
        } catch {
            return jsonResponse(APIError(.internalServerError, "internal error: \(error)").body(), status: .internalServerError)
        }
    }
}
