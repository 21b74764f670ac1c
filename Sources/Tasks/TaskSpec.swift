// TaskSpec: one task as declared in `tasks/<name>.yaml`, read strictly.
//
// Contract: every key of the YAML must be one this file knows (an unknown key is an error naming the file,
// line and key, and the keys allowed); values have the kinds listed below or the error names the field.
// Field meanings follow lm-evaluation-harness 0.4's TaskConfig:
//
//   task: name      output_type: loglikelihood | multiple_choice | generate_until | loglikelihood_rolling
//   data: {SPLIT: {file: REL_PATH (.bz2: decompressed), format: jsonl | text | paragraphs | hellaswag_text,
//                  labels: REL_PATH.lst, label_field: label, int_fields: [f...], value_maps: {f: {v: int}},
//                  preprocess: race_articles | hellaswag, url: URL, sha256: HEX,
//                  labels_url: URL, labels_sha256: HEX}}
//   training_split / validation_split / test_split / fewshot_split: SPLIT or null
//   doc_to_text / doc_to_target: a {{field}} template, a bare field name, or fn:NAME (a Swift function)
//   doc_to_choice: a list of templates, or fn:NAME, or a field holding a list
//   target_delimiter (" "), fewshot_delimiter ("\n\n"), description (""), num_fewshot (0), version (metadata)
//   metrics: a list of names or {metric: NAME, OPTION: value}: acc, acc_norm (multiple_choice), perplexity,
//            acc (loglikelihood), exact_match {regexes_to_ignore, ignore_case, ignore_punctuation}
//            (generate_until),
//            word_perplexity, byte_perplexity, bits_per_byte (loglikelihood_rolling)
//   generation_kwargs (generate_until): {until: STRING or [STRING...] ([fewshot_delimiter]), max_gen_toks: N (256),
//            do_sample: false, temperature: 0} (greedy only, lm-eval's default)
//
// `file` (and `labels`) are looked up as DataLocator says: under the data directory, beside the YAML, in the
// download cache, then downloaded from `url` (`labels_url`), which needs a pinned `sha256` (`labels_sha256`,
// 64 hex digits): a URL without a pin is an error, so every download is verified.

import Foundation
import Yams

public enum OutputType: String, Sendable {
    case loglikelihood, multipleChoice = "multiple_choice", generateUntil = "generate_until"
    case loglikelihoodRolling = "loglikelihood_rolling"
}

/// lm-eval's generation_kwargs, greedy only.
public struct GenerationConfig: Sendable, Equatable {
    public var until: [String] = []
    public var maxGenToks = 256
}

/// The metrics a task can report, named as lm-eval names them.
public enum Metric: String, Sendable, CaseIterable, Codable, Comparable {
    case acc, accNorm = "acc_norm", perplexity, exactMatch = "exact_match"
    case wordPerplexity = "word_perplexity", bytePerplexity = "byte_perplexity", bitsPerByte = "bits_per_byte"
    public static func < (a: Metric, b: Metric) -> Bool { a.rawValue < b.rawValue }
}

/// lm-eval's exact_match options (api/metrics.py exact_match_hf_evaluate).
public struct ExactMatchOptions: Sendable, Equatable {
    /// Patterns deleted from both strings first (Python `re.sub(p, "", x)`; read with NSRegularExpression,
    /// which agrees with Python's `re` on ordinary patterns: literals, classes, anchors, quantifiers).
    public var regexesToIgnore: [String] = []
    public var ignoreCase = false
    public var ignorePunctuation = false
}

public struct DataSource: Sendable, Equatable {
    public enum Format: String, Sendable { case jsonl, text, paragraphs, hellaswagText = "hellaswag_text" }
    public var file: String
    public var format: Format
    public var labels: String?
    public var labelField: String
    public var intFields: [String]
    public var valueMaps: [String: [String: Int]] = [:]
    public var preprocess: String?
    public var url: String?
    public var sha256: String?
    public var labelsURL: String?
    public var labelsSHA256: String?

    /// The data file with its canonical download, if any.
    public var dataFile: DataFile { DataFile(path: file, url: url, sha256: sha256) }
    /// The `.lst` labels file with its canonical download, if the split has one.
    public var labelsFile: DataFile? { labels.map { DataFile(path: $0, url: labelsURL, sha256: labelsSHA256) } }
}

/// One file a task reads: its relative path, and where it can be downloaded (url and sha256 both or neither).
public struct DataFile: Sendable, Equatable {
    public var path: String
    public var url: String?
    public var sha256: String?
}

public enum ChoiceSpec: Sendable, Equatable {
    case templates([String])
    case source(String)        // fn:NAME or a field name or a single template
}

public struct TaskSpec: Sendable {
    public var name: String
    public var file: String
    public var outputType: OutputType
    public var data: [String: DataSource]
    public var trainingSplit: String?
    public var validationSplit: String?
    public var testSplit: String?
    public var fewshotSplit: String?
    public var docToText: String
    public var docToTarget: String
    public var docToChoice: ChoiceSpec?
    public var targetDelimiter = " "
    public var fewshotDelimiter = "\n\n"
    public var description = ""
    public var metrics: [Metric]
    public var exactMatch = ExactMatchOptions()
    public var generation = GenerationConfig()
    public var numFewshot = 0
    public var version: String?

    /// The metrics each output type can compute (lm-eval's process_results).
    public static let metricsByType: [OutputType: [Metric]] = [
        .loglikelihood: [.perplexity, .acc], .multipleChoice: [.acc, .accNorm], .generateUntil: [.exactMatch],
        .loglikelihoodRolling: [.wordPerplexity, .bytePerplexity, .bitsPerByte],
    ]
    public static let knownMetrics: Set<String> = Set(Metric.allCases.map(\.rawValue))
    static let keys = ["task", "output_type", "data", "training_split", "validation_split", "test_split",
                       "fewshot_split", "doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter",
                       "fewshot_delimiter", "description", "metrics", "generation_kwargs", "num_fewshot", "version"]
    static let dataKeys = ["file", "format", "labels", "label_field", "int_fields", "value_maps", "preprocess", "url", "sha256",
                           "labels_url", "labels_sha256"]

    /// The split scored: test when the task has one, else validation (lm-eval's eval_docs).
    public var evalSplit: String? { testSplit ?? validationSplit }
    /// Few-shot pool: fewshot_split, else training, validation, test (lm-eval's fewshot_docs).
    public var fewshotPoolSplit: String? { fewshotSplit ?? trainingSplit ?? validationSplit ?? testSplit }
    /// lm-eval 0.4.13 excludes the evaluated document from its own shots iff fewshot_split == test_split
    /// (both possibly unset).
    public var excludesSelfFromShots: Bool { fewshotSplit == testSplit }

    public static func load(path: String) throws -> TaskSpec {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw TaskError("cannot read task file \(path)")
        }
        return try parse(yaml: text, file: path)
    }

    public static func parse(yaml: String, file: String) throws -> TaskSpec {
        let root: Node?
        if let p = YAMLBounds.problem(yaml) { throw TaskError("\(file): \(p)") }
        do { root = try Yams.compose(yaml: yaml) } catch { throw TaskError("\(file): not valid YAML: \(error)") }
        guard let map = root?.mapping else { throw TaskError("\(file): expected a mapping of task fields") }
        var f: [String: Node] = [:]
        for (k, v) in map {
            guard let key = k.string else { throw TaskError("\(file):\(line(k)): keys must be strings") }
            guard keys.contains(key) else {
                throw TaskError("\(file):\(line(k)): unknown field \"\(key)\" (allowed: \(keys.joined(separator: ", ")))")
            }
            f[key] = v
        }
        func str(_ k: String, required: Bool = false) throws -> String? {
            guard let n = f[k], !isNull(n) else {
                if required { throw TaskError("\(file): missing field \"\(k)\"") }
                return nil
            }
            guard n.scalar != nil, let s = n.string else { throw TaskError("\(file):\(line(n)): field \"\(k)\" must be a string") }
            return s
        }
        let name = try str("task", required: true)!
        guard let ot = OutputType(rawValue: try str("output_type", required: true)!) else {
            throw TaskError("\(file): output_type must be loglikelihood, multiple_choice, generate_until or loglikelihood_rolling")
        }
        guard let dataNode = f["data"]?.mapping else { throw TaskError("\(file): missing field \"data\" (a mapping of split name to file)") }
        var sources: [String: DataSource] = [:]
        for (k, v) in dataNode {
            guard let split = k.string, let m = v.mapping else { throw TaskError("\(file):\(line(k)): data entries are SPLIT: {file: ...}") }
            var d: [String: Node] = [:]
            for (dk, dv) in m {
                let key = dk.string ?? ""
                guard dataKeys.contains(key) else {
                    throw TaskError("\(file):\(line(dk)): unknown field \"data.\(split).\(key)\" (allowed: \(dataKeys.joined(separator: ", ")))")
                }
                d[key] = dv
            }
            guard let fileName = d["file"]?.string else { throw TaskError("\(file):\(line(v)): data.\(split) needs \"file\"") }
            let fmtName = d["format"]?.string ?? (fileName.hasSuffix(".jsonl") ? "jsonl" : "text")
            guard let fmt = DataSource.Format(rawValue: fmtName) else {
                throw TaskError("\(file):\(line(v)): data.\(split).format must be jsonl, text, paragraphs or hellaswag_text, found \"\(fmtName)\"")
            }
            let ints = try d["int_fields"].map { n -> [String] in
                guard let s = n.sequence else { throw TaskError("\(file):\(line(n)): data.\(split).int_fields must be a list") }
                return s.compactMap(\.string)
            } ?? []
            var maps: [String: [String: Int]] = [:]
            if let vm = d["value_maps"] {
                guard let m = vm.mapping else { throw TaskError("\(file):\(line(vm)): data.\(split).value_maps must map field -> {value: integer}") }
                for (fk, fv) in m {
                    guard let field = fk.string, let inner = fv.mapping else { throw TaskError("\(file):\(line(fk)): value_maps entries are FIELD: {value: integer}") }
                    var mm: [String: Int] = [:]
                    for (a, b) in inner {
                        guard let ks = a.string, let iv = b.int else { throw TaskError("\(file):\(line(a)): value_maps.\(field) values must be integers") }
                        mm[ks] = iv
                    }
                    maps[field] = mm
                }
            }
            let pre = d["preprocess"]?.string
            if let pre, !DataReader.preprocessors.contains(pre) {
                throw TaskError("\(file):\(line(v)): unknown preprocess \"\(pre)\" (known: \(DataReader.preprocessors.joined(separator: ", ")))")
            }
            // a download is declared with its pin, or not at all
            func pinned(_ urlKey: String, _ shaKey: String) throws -> (String?, String?) {
                let u = d[urlKey]?.string, h = d[shaKey]?.string
                if u != nil && h == nil { throw TaskError("\(file):\(line(v)): data.\(split).\(urlKey) needs \(shaKey) (the file's pinned sha256)") }
                if u == nil && h != nil { throw TaskError("\(file):\(line(v)): data.\(split).\(shaKey) without \(urlKey)") }
                if let h, h.count != 64 || !h.allSatisfy(\.isHexDigit) {
                    throw TaskError("\(file):\(line(v)): data.\(split).\(shaKey) must be 64 hexadecimal digits, found \"\(h)\"")
                }
                if let u, !(u.hasPrefix("https://") || u.hasPrefix("http://")) {
                    throw TaskError("\(file):\(line(v)): data.\(split).\(urlKey) must be an http(s) URL, found \"\(u)\"")
                }
                return (u, h?.lowercased())
            }
            let (url, sha) = try pinned("url", "sha256")
            let (lurl, lsha) = try pinned("labels_url", "labels_sha256")
            if lurl != nil && d["labels"] == nil { throw TaskError("\(file):\(line(v)): data.\(split).labels_url without labels") }
            sources[split] = DataSource(file: fileName, format: fmt, labels: d["labels"]?.string,
                                        labelField: d["label_field"]?.string ?? "label", intFields: ints,
                                        valueMaps: maps, preprocess: pre, url: url, sha256: sha,
                                        labelsURL: lurl, labelsSHA256: lsha)
        }
        var spec = TaskSpec(name: name, file: file, outputType: ot, data: sources,
                            trainingSplit: try str("training_split"), validationSplit: try str("validation_split"),
                            testSplit: try str("test_split"), fewshotSplit: try str("fewshot_split"),
                            docToText: try str("doc_to_text", required: true)!,
                            docToTarget: try str("doc_to_target", required: true)!,
                            docToChoice: nil, metrics: [])
        if let c = f["doc_to_choice"], !isNull(c) {
            if let seq = c.sequence {
                spec.docToChoice = .templates(try seq.map { n in
                    guard let s = n.string else { throw TaskError("\(file):\(line(n)): doc_to_choice entries must be strings") }
                    return s
                })
            } else if let s = c.string { spec.docToChoice = .source(s) }
            else { throw TaskError("\(file):\(line(c)): doc_to_choice must be a list or a string") }
        }
        if ot == .multipleChoice && spec.docToChoice == nil { throw TaskError("\(file): multiple_choice needs doc_to_choice") }
        if let s = try str("target_delimiter") { spec.targetDelimiter = s }
        if let s = try str("fewshot_delimiter") { spec.fewshotDelimiter = s }
        if let s = try str("description") { spec.description = s }
        if let s = try str("version") { spec.version = s }
        if let n = f["num_fewshot"] {
            guard let k = n.int, k >= 0 else { throw TaskError("\(file):\(line(n)): num_fewshot must be a non-negative integer") }
            spec.numFewshot = k
        }
        guard let ms = f["metrics"]?.sequence else { throw TaskError("\(file): missing field \"metrics\" (a list)") }
        let allowed = metricsByType[ot]!
        for m in ms {
            let name = m.string ?? m.mapping?["metric"]?.string
            guard let s = name, let metric = Metric(rawValue: s) else {
                throw TaskError("\(file):\(line(m)): unknown metric \"\(name ?? "?")\" (known: \(knownMetrics.sorted().joined(separator: ", ")))")
            }
            guard allowed.contains(metric) else {
                throw TaskError("\(file):\(line(m)): metric \"\(s)\" does not apply to output_type \(ot.rawValue) (allowed: \(allowed.map(\.rawValue).joined(separator: ", ")))")
            }
            if let opts = m.mapping {
                for (k, v) in opts {
                    let key = k.string ?? ""
                    switch (s, key) {
                    case (_, "metric"): continue
                    case ("exact_match", "regexes_to_ignore"):
                        guard let seq = v.sequence else { throw TaskError("\(file):\(line(v)): \(s).regexes_to_ignore must be a list of patterns") }
                        for n in seq {
                            guard let p = n.string, (try? NSRegularExpression(pattern: p)) != nil else {
                                throw TaskError("\(file):\(line(n)): \(s).regexes_to_ignore: \"\(n.string ?? "?")\" is not a valid pattern")
                            }
                            spec.exactMatch.regexesToIgnore.append(p)
                        }
                    case ("exact_match", "ignore_case"), ("exact_match", "ignore_punctuation"):
                        guard let b = v.bool else { throw TaskError("\(file):\(line(v)): \(s).\(key) must be true or false") }
                        if key == "ignore_case" { spec.exactMatch.ignoreCase = b } else { spec.exactMatch.ignorePunctuation = b }
                    default:
                        throw TaskError("\(file):\(line(k)): unknown option \"\(key)\" for metric \(s) (allowed: \(s == "exact_match" ? "regexes_to_ignore, ignore_case, ignore_punctuation" : "none"))")
                    }
                }
            }
            spec.metrics.append(metric)
        }
        var untilGiven = false
        if let g = f["generation_kwargs"], !isNull(g) {
            guard ot == .generateUntil else { throw TaskError("\(file):\(line(g)): generation_kwargs applies only to output_type generate_until") }
            guard let gm = g.mapping else { throw TaskError("\(file):\(line(g)): generation_kwargs must be a mapping") }
            for (k, v) in gm {
                switch k.string ?? "" {
                case "until":
                    untilGiven = true
                    if let seq = v.sequence {
                        spec.generation.until = try seq.map { n in
                            guard let s = n.string else { throw TaskError("\(file):\(line(n)): generation_kwargs.until entries must be strings") }
                            return s
                        }
                    } else if let s = v.string { spec.generation.until = [s] }
                    else { throw TaskError("\(file):\(line(v)): generation_kwargs.until must be a string or a list of strings") }
                    if let i = spec.generation.until.firstIndex(of: "") {
                        // Python's str.split("") raises: lm-eval cannot run it either; an empty stop would end every generation at once
                        throw TaskError("\(file):\(line(v)): generation_kwargs.until entry \(i) is empty; expected non-empty stop strings")
                    }
                case "max_gen_toks":
                    guard let n = v.int, n > 0 else { throw TaskError("\(file):\(line(v)): generation_kwargs.max_gen_toks must be a positive integer") }
                    spec.generation.maxGenToks = n
                case "do_sample":
                    guard v.bool == false else { throw TaskError("\(file):\(line(v)): generation_kwargs.do_sample: only false (greedy decoding, lm-eval's default) is supported") }
                case "temperature":
                    guard let t = v.float, t == 0 else { throw TaskError("\(file):\(line(v)): generation_kwargs.temperature: only 0 (greedy decoding) is supported") }
                default:
                    throw TaskError("\(file):\(line(k)): unknown field \"generation_kwargs.\(k.string ?? "?")\" (allowed: until, max_gen_toks, do_sample, temperature)")
                }
            }
        }
        // lm-eval TaskConfig.__post_init__: without `until`, generation stops at the few-shot delimiter
        if ot == .generateUntil && !untilGiven { spec.generation.until = [spec.fewshotDelimiter] }
        // A split without a data entry is an error only when it is used (LoadedTask.fewshotPool).
        guard let ev = spec.evalSplit else { throw TaskError("\(file): neither test_split nor validation_split is set") }
        guard sources[ev] != nil else { throw TaskError("\(file): the evaluated split \"\(ev)\" has no entry under data") }
        return spec
    }

    /// Tasks by name from a folder of YAML files (file name = task name).
    public static func load(named name: String, in dir: String) throws -> TaskSpec {
        let path = (dir as NSString).appendingPathComponent("\(name).yaml")
        guard FileManager.default.fileExists(atPath: path) else {
            let have = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
                .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
            throw TaskError("unknown task \"\(name)\": no \(path) (tasks: \(have.joined(separator: ", ")))")
        }
        let spec = try load(path: path)
        guard spec.name == name else { throw TaskError("\(path): task field says \"\(spec.name)\", expected \"\(name)\"") }
        return spec
    }
}

/// YAML null (`null`, `~`, nothing), but not a quoted "" (an empty string, e.g. a rolling task's doc_to_text).
private func isNull(_ n: Node) -> Bool {
    guard n.null != nil else { return false }
    if let st = n.scalar?.style, st == .singleQuoted || st == .doubleQuoted { return false }
    return true
}

private func line(_ n: Node) -> String { n.mark.map { String($0.line) } ?? "?" }
