// APIError: every refusal the server answers, as an HTTP status plus OpenAI's error object
// `{"error": {"message", "type", "param", "code"}}`. Megatron's endpoint adds a top-level "message"
// (its CLI prints `response.json()['message']` on a non-200 answer).

import Hummingbird

public struct APIError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Seconds, for 503 answers.
    public var retryAfter: Int?
    public var description: String { "\(status.code) \(message)" }

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.param = param; self.code = code
        self.type = type ?? (status == .unauthorized ? "authentication_error"
                             : status.code >= 500 ? (status == .serviceUnavailable ? "server_overloaded" : "server_error")
                             : status == .notFound ? "not_found_error" : "invalid_request_error")
    }

    public static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: param == nil ? nil : "invalid_value")
    }

    public func body(megatron: Bool = false) -> JSON {
        let err: JSON = .object([("message", .string(message)), ("type", .string(type)),
                                 ("param", param.map { .string($0) } ?? .null), ("code", code.map { .string($0) } ?? .null)])
        return megatron ? .object([("message", .string(message)), ("error", err)]) : .object([("error", err)])
    }
}
