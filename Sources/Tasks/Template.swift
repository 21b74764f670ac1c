// Template: the task YAMLs' tiny template language, and how doc_to_text / doc_to_target / doc_to_choice
// resolve against a document.
//
// Contract: `{{ field }}` is replaced by the field's value as Python's str() prints it; everything else is
// literal, trailing newlines included (lm-eval's Jinja environment keeps them). A bare field
// name (no braces) that the document has yields the field's value itself; `fn:NAME` calls a named Swift
// function (TaskFunctions). A field the document lacks is an error naming the task file, the template and
// the document's file:line.

public enum Resolved: Equatable, Sendable {
    case text(String), index(Int), list([String])
}

public enum Template {
    public static func render(_ template: String, _ doc: Document, task: String) throws -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw TaskError("\(task): template \"\(template)\" has \"{{\" without \"}}\"")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            guard let v = doc[name] else {
                throw TaskError("\(task): template \"\(template)\" refers to missing field \"\(name)\" (document \(doc.origin); fields: \(doc.fields.keys.sorted().joined(separator: ", ")))")
            }
            out += v.description
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    /// doc_to_text / doc_to_target resolution (lm-eval's rules, `isChoiceTask` enables digit -> index).
    public static func resolve(_ spec: String, _ doc: Document, task: String, isChoiceTask: Bool) throws -> Resolved {
        if spec.hasPrefix("fn:") { return try TaskFunctions.call(String(spec.dropFirst(3)), doc, task: task) }
        if !spec.contains("{{"), let v = doc[spec] {
            switch v {
            case .int(let i): return .index(i)
            case .bool(let b): return .index(b ? 1 : 0)
            case .list(let l): return .list(l.map(\.description))
            default: return .text(v.description)
            }
        }
        let s = try render(spec, doc, task: task)
        if isChoiceTask, !s.isEmpty, s.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }), let i = Int(s) { return .index(i) }
        return .text(s)
    }

    public static func choices(_ spec: ChoiceSpec, _ doc: Document, task: String) throws -> [String] {
        switch spec {
        case .templates(let ts): return try ts.map { try render($0, doc, task: task) }
        case .source(let s):
            switch try resolve(s, doc, task: task, isChoiceTask: false) {
            case .list(let l): return l
            default: throw TaskError("\(task): doc_to_choice \"\(s)\" does not give a list (document \(doc.origin))")
            }
        }
    }
}

import Foundation
