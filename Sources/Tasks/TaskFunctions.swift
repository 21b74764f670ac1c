// TaskFunctions: what the template language cannot express, as small named Swift functions that task YAMLs
// refer to with `fn:NAME`. Each reproduces the lm-eval 0.4.13 code named beside it.
//
// Contract: a function reads only the fields it names; a missing or malformed field is a TaskError naming
// the document's file:line, never a trap.

public enum TaskFunctions {
    public static let names = ["lambada_context", "lambada_target", "winogrande_text", "winogrande_target", "winogrande_choices"]

    public static func call(_ name: String, _ doc: Document, task: String) throws -> Resolved {
        func field(_ k: String) throws -> String {
            guard case .string(let s)? = doc[k] else { throw TaskError("\(task): fn:\(name) needs a string field \"\(k)\" (document \(doc.origin))") }
            return s
        }
        switch name {
        // lambada_openai.yaml: {{text.split(' ')[:-1]|join(' ')}} and {{' '+text.split(' ')[-1]}}
        case "lambada_context":
            let words = try field("text").split(separator: " ", omittingEmptySubsequences: false)
            return .text(words.dropLast().joined(separator: " "))
        case "lambada_target":
            let words = try field("text").split(separator: " ", omittingEmptySubsequences: false)
            return .text(" " + (words.last.map(String.init) ?? ""))
        // winogrande/preprocess_winogrande.py
        case "winogrande_text":
            switch try field("answer") {
            case "1": return .index(0)
            case "2": return .index(1)
            case let a: throw TaskError("\(task): answer must be \"1\" or \"2\", found \"\(a)\" (document \(doc.origin))")
            }
        case "winogrande_target":
            let s = try field("sentence")
            guard let i = s.firstIndex(of: "_") else { throw TaskError("\(task): sentence has no \"_\" (document \(doc.origin))") }
            return .text(String(s[s.index(after: i)...]).trimmingPythonWhitespace())
        case "winogrande_choices":
            let s = try field("sentence")
            guard let i = s.firstIndex(of: "_") else { throw TaskError("\(task): sentence has no \"_\" (document \(doc.origin))") }
            return .list([String(s[..<i]) + (try field("option1")), String(s[..<i]) + (try field("option2"))])
        default:
            throw TaskError("\(task): unknown function fn:\(name) (known: \(names.joined(separator: ", ")))")
        }
    }
}

extension String {
    /// Python's str.strip() with no argument (Unicode whitespace).
    func trimmingPythonWhitespace() -> String {
        let isWS: (Character) -> Bool = { $0.isWhitespace }
        guard let a = firstIndex(where: { !isWS($0) }), let b = lastIndex(where: { !isWS($0) }) else { return "" }
        return String(self[a...b])
    }
}
