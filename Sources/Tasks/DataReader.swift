// DataReader: a task split's documents from local files, in file order.
//
// Contract: `jsonl` is one JSON object per non-empty line; `text` is one document {"text": line} per
// non-empty line. A `.lst` labels file holds one integer per line and must have exactly as many entries as
// the data file has documents; its values go into `label_field`. `int_fields` turns booleans and numeric
// strings into integers (SuperGLUE's ClassLabel columns). Every malformed line is an error naming file
// and line. Where the files come from (data directory, beside the YAML, download cache, download) is
// DataLocator's business.

import Foundation

public enum DataReader {
    public static func read(_ src: DataSource, from data: DataLocator, task: String) throws -> [Document] {
        let path = try data.locate(src.dataFile, task: task)
        var docs: [Document] = []
        for (n, line) in try lines(path) {
            switch src.format {
            case .text:
                docs.append(Document(fields: ["text": .string(line)], origin: "\(path):\(n)"))
            case .jsonl:
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
            let labels = try lines(lpath)
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
        if src.preprocess == "race_articles" { docs = try raceArticles(docs) }
        return docs
    }

    public static let preprocessors = ["race_articles"]

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
    static func lines(_ path: String) throws -> [(Int, String)] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TaskError("\(path): cannot read") }
        guard let text = String(data: data, encoding: .utf8) else { throw TaskError("\(path): not UTF-8") }
        var out: [(Int, String)] = []
        var n = 0
        for raw in text.components(separatedBy: "\n") {
            n += 1
            var l = Substring(raw)
            if l.hasSuffix("\r") { l = l.dropLast() }
            if !l.trimmingCharacters(in: .whitespaces).isEmpty { out.append((n, String(l))) }
        }
        return out
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
            throw TaskError("\(spec.file): few-shot examples come from split \"\(split)\", which has no entry under data")
        }
        return try DataReader.read(src, from: data, task: spec.file)
    }
}
