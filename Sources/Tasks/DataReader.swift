// DataReader: a task split's documents from local files, in file order.
//
// Contract: `jsonl` is one JSON object per non-empty line; `text` is one document {"text": line} per
// non-empty line; `paragraphs` is one document {"text": block} per run of non-blank lines (lines joined
// by "\n", blank = whitespace only: Tiny Shakespeare's speeches); `hellaswag_text` is klosax's HellaSwag
// text layout, 6 lines per document (`activity_label: ctx`, gold label 0-3, four endings), read into
// HF Rowan/hellaswag's fields (see `hellaswagText`). A file whose name ends in `.bz2` is decompressed
// first (libbz2). A `.lst` labels file holds one integer per line and must have exactly as many entries as
// the data file has documents; its values go into `label_field`. `int_fields` turns booleans and numeric
// strings into integers (SuperGLUE's ClassLabel columns). Every malformed line is an error naming file
// and line. Where the files come from (data directory, beside the YAML, download cache, download) is
// DataLocator's business.

import Foundation

public enum DataReader {
    public static func read(_ src: DataSource, from data: DataLocator, task: String) throws -> [Document] {
        let path = try data.locate(src.dataFile, task: task)
        var docs: [Document] = []
        switch src.format {
        case .hellaswagText: docs = try hellaswagText(path, task: task)
        case .paragraphs: docs = try paragraphs(path, task: task)
        case .text:
            docs = try lines(path, task: task).map { Document(fields: ["text": .string($1)], origin: "\(path):\($0)") }
        case .jsonl:
            for (n, line) in try lines(path, task: task) {
                let obj: Any
                do { obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) } catch {
                    throw TaskError("\(path):\(n): not valid JSON")
                }
                guard case .object(let fields) = Value(json: obj) else { throw TaskError("\(path):\(n): expected a JSON object") }
                docs.append(Document(fields: fields, origin: "\(path):\(n)"))
            }
        }
        if let lst = src.labelsFile {
            let lpath = try data.locate(lst, task: task)
            let labels = try lines(lpath, task: task)
            guard labels.count == docs.count else {
                throw TaskError("\(lpath): \(labels.count) labels for \(docs.count) documents in \(path)")
            }
            for (i, (n, l)) in labels.enumerated() {
                guard let v = Int(l.trimmingCharacters(in: .whitespaces)) else { throw TaskError("\(lpath):\(n): label \"\(l)\" is not an integer") }
                docs[i].fields[src.labelField] = .int(v)
            }
        }
        for f in src.intFields {
            for i in docs.indices {
                switch docs[i][f] {
                case .bool(let b)?: docs[i].fields[f] = .int(b ? 1 : 0)
                case .string(let s)?:
                    guard let v = Int(s) else { throw TaskError("\(docs[i].origin): field \"\(f)\" = \"\(s)\" is not an integer") }
                    docs[i].fields[f] = .int(v)
                case .int?: break
                default: throw TaskError("\(docs[i].origin): field \"\(f)\" is missing or not an integer")
                }
            }
        }
        for (f, m) in src.valueMaps {
            for i in docs.indices {
                let key: String
                switch docs[i][f] {
                case .string(let s)?: key = s
                case .bool(let b)?: key = b ? "true" : "false"
                case .int(let n)?: key = String(n)
                default: throw TaskError("\(docs[i].origin): field \"\(f)\" is missing")
                }
                guard let v = m[key] else {
                    throw TaskError("\(docs[i].origin): field \"\(f)\" = \"\(key)\" is not one of \(m.keys.sorted().joined(separator: ", "))")
                }
                docs[i].fields[f] = .int(v)
            }
        }
        switch src.preprocess {
        case "race_articles": docs = try raceArticles(docs)
        case "hellaswag": docs = try hellaswagDocs(docs)
        default: break
        }
        return docs
    }

    public static let preprocessors = ["race_articles", "hellaswag"]

    /// RACE as lm-eval's EleutherAI/race has it: one document per article (consecutive rows with the same
    /// article text), `problems` = its questions in file order as {question, options, answer}.
    static func raceArticles(_ rows: [Document]) throws -> [Document] {
        var out: [Document] = []
        for r in rows {
            guard case .string(let article)? = r["article"], r["question"] != nil, r["options"] != nil, r["answer"] != nil else {
                throw TaskError("\(r.origin): race rows need article, question, options, answer")
            }
            let problem = Value.object(["question": r["question"]!, "options": r["options"]!, "answer": r["answer"]!])
            if let last = out.last, case .string(let a)? = last["article"], a == article, case .list(var ps)? = last["problems"] {
                ps.append(problem)
                out[out.count - 1].fields["problems"] = .list(ps)
            } else {
                out.append(Document(fields: ["article": .string(article), "problems": .list([problem])], origin: r.origin))
            }
        }
        return out
    }

    /// Non-empty lines with 1-based numbers ("\r\n" tolerated).
    static func lines(_ path: String, task: String) throws -> [(Int, String)] {
        try allLines(path, task: task).filter { !$0.1.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    /// Every line with its 1-based number ("\r" before "\n" dropped; no entry after a final "\n").
    static func allLines(_ path: String, task: String) throws -> [(Int, String)] {
        let text = try readText(path, task: task)
        var out: [(Int, String)] = []
        var parts = text.components(separatedBy: "\n")
        if parts.last == "" { parts.removeLast() }
        for (i, raw) in parts.enumerated() {
            var l = Substring(raw)
            if l.hasSuffix("\r") { l = l.dropLast() }
            out.append((i + 1, String(l)))
        }
        return out
    }

    /// The file's text (UTF-8), decompressed first when its name ends in `.bz2`.
    static func readText(_ path: String, task: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TaskError("\(task): data file \(path) not found (pass --data-dir, or set TURING_SHARED_DATA)")
        }
        guard var data = FileManager.default.contents(atPath: path) else { throw TaskError("\(path): cannot read") }
        if path.hasSuffix(".bz2") { data = try BZip2.decompress(data, file: path) }
        guard let text = String(data: data, encoding: .utf8) else { throw TaskError("\(path): not UTF-8") }
        return text
    }

    /// Blank-line-separated blocks, each {"text": its lines joined by "\n"}; origin = the block's first line.
    static func paragraphs(_ path: String, task: String) throws -> [Document] {
        var docs: [Document] = []
        var block: [String] = [], first = 0
        func flush() {
            if !block.isEmpty { docs.append(Document(fields: ["text": .string(block.joined(separator: "\n"))], origin: "\(path):\(first)")) }
            block = []
        }
        for (n, l) in try allLines(path, task: task) {
            if l.trimmingCharacters(in: .whitespaces).isEmpty { flush() } else {
                if block.isEmpty { first = n }
                block.append(l)
            }
        }
        flush()
        return docs
    }

    /// klosax's hellaswag_val_full.txt: per document `activity_label + ": " + ctx`, the gold label (0-3), four
    /// endings. Read into HF Rowan/hellaswag's fields: activity_label (text before the first ": "), ctx_a (the
    /// rest), ctx_b "" (klosax merged ctx_a and ctx_b; the split is lost), ctx, endings, label (a string, as HF).
    static func hellaswagText(_ path: String, task: String) throws -> [Document] {
        let ls = try allLines(path, task: task)
        guard ls.count % 6 == 0 else {
            throw TaskError("\(path): \(ls.count) lines, expected 6 per document (activity_label: ctx, label, 4 endings)")
        }
        var docs: [Document] = []
        for i in stride(from: 0, to: ls.count, by: 6) {
            let (n, head) = ls[i]
            guard let colon = head.range(of: ": ") else {
                throw TaskError("\(path):\(n): expected \"activity_label: context\", found no \": \" in \"\(head.prefix(60))\"")
            }
            let (ln, label) = ls[i + 1]
            guard let g = Int(label), (0...3).contains(g) else {
                throw TaskError("\(path):\(ln): expected the gold label 0, 1, 2 or 3, found \"\(label.prefix(60))\"")
            }
            let ctx = String(head[colon.upperBound...])
            docs.append(Document(fields: [
                "activity_label": .string(String(head[..<colon.lowerBound])), "ctx_a": .string(ctx), "ctx_b": .string(""),
                "ctx": .string(ctx), "endings": .list(ls[(i + 2)..<(i + 6)].map { .string($0.1) }), "label": .string(String(g)),
            ], origin: "\(path):\(n)"))
        }
        return docs
    }

    /// lm-eval 0.4.13 hellaswag/utils.py process_docs: adds query = preprocess(activity_label + ": " + ctx_a +
    /// " " + ctx_b.capitalize()), choices = [preprocess(ending)], gold = int(label).
    static func hellaswagDocs(_ rows: [Document]) throws -> [Document] {
        try rows.map { r in
            guard case .string(let al)? = r["activity_label"], case .string(let a)? = r["ctx_a"], case .string(let b)? = r["ctx_b"],
                  case .list(let endings)? = r["endings"] else {
                throw TaskError("\(r.origin): hellaswag documents need activity_label, ctx_a, ctx_b (strings) and endings (a list)")
            }
            let gold: Int
            switch r["label"] {
            case .string(let s)?: guard let g = Int(s) else { throw TaskError("\(r.origin): label \"\(s)\" is not an integer") }; gold = g
            case .int(let g)?: gold = g
            default: throw TaskError("\(r.origin): hellaswag documents need a label")
            }
            var d = r
            d.fields["query"] = .string(hellaswagPreprocess(al + ": " + a + " " + pyCapitalize(b)))
            d.fields["choices"] = .list(endings.map { .string(hellaswagPreprocess($0.description)) })
            d.fields["gold"] = .int(gold)
            return d
        }
    }
}

/// A task with its evaluated documents read; the few-shot pool is read on first use.
public struct LoadedTask {
    public let spec: TaskSpec
    public let data: DataLocator
    public let evalDocs: [Document]
    public var dataDir: String { data.dataDir }

    public init(spec: TaskSpec, data: DataLocator) throws {
        self.spec = spec; self.data = data
        let split = spec.evalSplit!
        evalDocs = try DataReader.read(spec.data[split]!, from: data, task: spec.file)
    }

    /// Local files only (no download cache): `dataDir`, then beside the task YAML.
    public init(spec: TaskSpec, dataDir: String) throws {
        try self.init(spec: spec, data: DataLocator(dataDir: dataDir))
    }

    public func fewshotPool() throws -> [Document] {
        guard let split = spec.fewshotPoolSplit else { throw TaskError("\(spec.file): no split to draw few-shot examples from") }
        if split == spec.evalSplit { return evalDocs }
        guard let src = spec.data[split] else {
            throw TaskError("\(spec.file): few-shot examples come from split \"\(split)\", which has no entry under data (add its file there, or set fewshot_split to a split you have)")
        }
        return try DataReader.read(src, from: data, task: spec.file)
    }
}
