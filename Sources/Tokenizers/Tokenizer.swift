// Tokenizer: the text <-> token-id contract shared by every tokenizer in Turing.
// Contract: `encode` never fails (every String is encodable); `decode` skips ids the tokenizer does not know
// and replaces invalid UTF-8 with U+FFFD; `decodeBytes` returns the exact bytes (for streaming partial UTF-8,
// see UTF8StreamDecoder). Loading errors are reported as `TokenizerError`, never by trapping.

import Foundation

public protocol Tokenizer {
    /// Token ids for `text` (no BOS/EOS unless the tokenizer is configured to add them: an HF tokenizer.json's
    /// post-processor, a SentencePiece/tiktoken tokenizer's `addBOS`, as transformers' default encode does).
    func encode(_ text: String) -> [Int]
    /// Token ids with (`true`: as `encode(_:)`) or without the configured special tokens (HF `add_special_tokens`).
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    /// Text for `ids`; unknown ids are skipped, invalid UTF-8 becomes U+FFFD.
    func decode(_ ids: [Int]) -> String
    /// Raw bytes for `ids` (may end in the middle of a UTF-8 sequence).
    func decodeBytes(_ ids: [Int]) -> [UInt8]
    /// Human-readable form of one vocabulary entry (the vocab-file spelling), nil for unknown ids.
    func tokenString(_ id: Int) -> String?
    /// Id of one vocabulary entry given in its vocab-file spelling, nil if absent.
    func tokenID(_ token: String) -> Int?
    /// Number of ids (max id + 1, including added/special tokens).
    var vocabSize: Int { get }
    var eosToken: Int? { get }
    var bosToken: Int? { get }
}

extension Tokenizer {
    /// Default for tokenizers that add no special tokens.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] { encode(text) }
    /// Default: lossy UTF-8 of decodeBytes (conformers implement decodeBytes, or both).
    public func decode(_ ids: [Int]) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }
    public func tokenString(_ id: Int) -> String? { nil }
    public func tokenID(_ token: String) -> Int? { nil }
}

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(String)
    case unreadable(path: String, reason: String)
    case invalidJSON(String)
    case invalidFormat(String)
    case tokenNotInVocab(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "tokenizer file not found: \(p)"
        case .unreadable(let p, let r): return "cannot read tokenizer file \(p): \(r)"
        case .invalidJSON(let m): return "invalid tokenizer JSON: \(m)"
        case .invalidFormat(let m): return "invalid tokenizer file: \(m)"
        case .tokenNotInVocab(let t): return "merge refers to a token missing from the vocab: \(t)"
        case .unsupported(let m): return "unsupported tokenizer feature: \(m)"
        }
    }
}

/// Reads a whole file, mapping failures to TokenizerError.
func readTokenizerFile(_ path: String) throws -> Data {
    guard FileManager.default.fileExists(atPath: path) else { throw TokenizerError.fileNotFound(path) }
    do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw TokenizerError.unreadable(path: path, reason: "\(error)")
    }
}
