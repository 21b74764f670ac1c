// TaskFunctions: what the template language cannot express, as small named Swift functions that task YAMLs
// refer to with `fn:NAME`. Each reproduces the lm-eval 0.4.13 code named beside it.
//
// Contract: a function reads only the fields it names; a missing or malformed field is a TaskError naming
// the document's file:line, never a trap.

import Foundation

public enum TaskFunctions {
    public static let names = ["lambada_context", "lambada_target", "winogrande_text", "winogrande_target", "winogrande_choices",
                               "wic_text", "race_text", "race_target", "race_choices"]

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
        // super_glue/wic/default.yaml: ... Is the word '{{sentence1[start1:end1]}}' used ...
        case "wic_text":
            let s1 = try field("sentence1"), s2 = try field("sentence2")
            guard case .int(let a)? = doc["start1"], case .int(let b)? = doc["end1"] else {
                throw TaskError("\(task): fn:wic_text needs integer start1/end1 (document \(doc.origin))")
            }
            let word = pySlice(s1, a, b)
            return .text("Sentence 1: \(s1)\nSentence 2: \(s2)\nQuestion: Is the word '\(word)' used in the same way in the two sentences above?\nAnswer:")
        // race/preprocess_race.py (over documents grouped by DataReader's race_articles)
        case "race_text":
            let ps = try raceProblems(doc, task: task)
            var text = "Article: " + (try field("article")) + "\n\n"
            for p in ps.dropLast() {
                if p.question.unicodeScalars.suffix(6).elementsEqual("  _  .".unicodeScalars) {
                    text += pySlice(p.question, 0, p.question.unicodeScalars.count - 5) + p.options[p.answer] + "\n"
                } else {
                    text += "Question: " + p.question + "\n" + "Answer: " + p.options[p.answer] + "\n"
                }
            }
            return .text(text + ps.last!.question)
        case "race_target":
            return .index(try raceProblems(doc, task: task).last!.answer)
        case "race_choices":
            let p = try raceProblems(doc, task: task).last!
            guard p.options.count >= 4 else { throw TaskError("\(task): race needs 4 options (document \(doc.origin))") }
            return .list(Array(p.options.prefix(4)))
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

struct RaceProblem { var question: String; var options: [String]; var answer: Int }

func raceProblems(_ doc: Document, task: String) throws -> [RaceProblem] {
    guard case .list(let ps)? = doc["problems"], !ps.isEmpty else {
        throw TaskError("\(task): race documents need a non-empty \"problems\" list (preprocess: race_articles) (document \(doc.origin))")
    }
    return try ps.map { p in
        guard case .object(let o) = p, case .string(let q)? = o["question"], case .list(let opts)? = o["options"],
              case .string(let a)? = o["answer"], let idx = ["A": 0, "B": 1, "C": 2, "D": 3][a], idx < opts.count else {
            throw TaskError("\(task): malformed race problem (document \(doc.origin))")
        }
        return RaceProblem(question: q, options: opts.map(\.description), answer: idx)
    }
}

/// Python's s[a:b] over code points, for 0 <= a, b (clamped).
func pySlice(_ s: String, _ a: Int, _ b: Int) -> String {
    let u = Array(s.unicodeScalars)
    let lo = min(max(0, a), u.count), hi = min(max(lo, b), u.count)
    var v = String.UnicodeScalarView(); v.append(contentsOf: u[lo..<hi])
    return String(v)
}

// MARK: - HellaSwag (lm-eval 0.4.13 hellaswag/utils.py)

/// `preprocess`: strip; " [title]" -> ". "; delete every `\[.*?\]` span (non-greedy, not across a newline,
/// as Python's `re.sub`); "  " -> " " (one left-to-right pass, as str.replace).
func hellaswagPreprocess(_ text: String) -> String {
    let t = text.trimmingPythonWhitespace().replacingOccurrences(of: " [title]", with: ". ", options: .literal)
    var out = String.UnicodeScalarView()
    let u = Array(t.unicodeScalars)
    var i = 0
    while i < u.count {
        if u[i] == "[" {
            var j = i + 1
            while j < u.count && u[j] != "]" && u[j] != "\n" { j += 1 }
            if j < u.count && u[j] == "]" { i = j + 1; continue }
        }
        out.append(u[i]); i += 1
    }
    return String(out).replacingOccurrences(of: "  ", with: " ", options: .literal)
}

/// Python's str.capitalize(): first character upper-cased (Python uses its title case, which differs only for
/// a few digraphs such as "ǆ"), the rest lower-cased.
func pyCapitalize(_ s: String) -> String {
    guard let f = s.unicodeScalars.first else { return "" }
    return String(f).uppercased() + String(s.unicodeScalars.dropFirst()).lowercased()
}
