// RequestFile: the JSONL `turing score` reads, parsed strictly: one object per non-empty line,
// {"context": STRING, "continuation": STRING} (or {"text": STRING} for rolling scoring). Errors name
// the file and the 1-based line and say what was expected and found, in plain words. The bytes are
// data: nothing else is read from them.

import Foundation
import TensorCore

public enum RequestFile {
    public struct Pair: Decodable, Sendable { public let context: String; public let continuation: String }
    public struct Text: Decodable, Sendable { public let text: String }

    /// Non-empty lines of `data` with their 1-based line numbers.
    public static func lines(_ data: Data, file: String) throws -> [(line: Int, bytes: Data)] {
        guard let text = String(data: data, encoding: .utf8) else { throw EvaluationError("\(file) is not UTF-8 text") }
        var out: [(Int, Data)] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if !t.isEmpty { out.append((i + 1, Data(t.utf8))) }
        }
        return out
    }

    /// One line decoded as `T`, or an error naming `file:line` and what is wrong.
    public static func decode<T: Decodable>(_ t: T.Type, _ d: Data, file: String, line: Int) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: d) } catch {
            throw EvaluationError("\(file):\(line): \(plainReason(error))")
        }
    }

    public static func pairs(_ data: Data, file: String) throws -> [(line: Int, pair: Pair)] {
        try lines(data, file: file).map { ($0.line, try decode(Pair.self, $0.bytes, file: file, line: $0.line)) }
    }

    public static func texts(_ data: Data, file: String) throws -> [(line: Int, text: Text)] {
        try lines(data, file: file).map { ($0.line, try decode(Text.self, $0.bytes, file: file, line: $0.line)) }
    }
}
