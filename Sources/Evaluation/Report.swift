// Report: what `turing eval` writes: results.json in lm-eval's shape, samples_<task>.jsonl, and the
// printed table.
//
// Contract: results.json = {"results": {KEY: {"alias", "<metric>,none", "<metric>_stderr,none"}},
// "n-shot", "n-samples": {KEY: {"original", "effective"}}, "configs", "versions", "config" (checkpoint,
// format, layout, weights hash, seed, limit), "turing_version", "timings"}; KEY is the task name, or
// "<task>@<k>shot" when several shot counts ran. Samples carry `generated` (generate_until) and `words`/`bytes`
// (loglikelihood_rolling) beside the requests and log-likelihoods. A missing stderr is "N/A" as in lm-eval. Files are
// written atomically (temporary file in the same folder, then rename).

import Foundation
import TensorCore
import Tasks

public let turingVersion = "0.5.0"

public struct RunInfo {
    public var checkpoint: String
    public var format: String
    public var layout: String
    public var weightsHash: String
    public var limit: Int?
    public var dataDir: String
    public init(checkpoint: String, format: String, layout: String, weightsHash: String, limit: Int?, dataDir: String) {
        self.checkpoint = checkpoint; self.format = format; self.layout = layout; self.weightsHash = weightsHash
        self.limit = limit; self.dataDir = dataDir
    }
}

public enum Report {
    public static func key(_ r: TaskResult, multiShot: Bool) -> String { multiShot ? "\(r.task)@\(r.numFewshot)shot" : r.task }

    public static func resultsJSON(_ results: [TaskResult], specs: [String: TaskSpec], run: RunInfo, totalSeconds: Double) throws -> Data {
        let multi = Set(results.map(\.numFewshot)).count > 1
        var res: [String: Any] = [:], nshot: [String: Any] = [:], nsamples: [String: Any] = [:]
        var configs: [String: Any] = [:], versions: [String: Any] = [:], timings: [String: Any] = [:]
        for r in results {
            let k = key(r, multiShot: multi)
            var m: [String: Any] = ["alias": r.task]
            for v in r.metrics {
                m["\(v.name),none"] = v.value
                m["\(v.name)_stderr,none"] = v.stderr.map { $0 as Any } ?? "N/A"
            }
            res[k] = m
            nshot[k] = r.numFewshot
            nsamples[k] = ["original": r.documentsAvailable, "effective": r.docs.count]
            timings[k] = ["seconds": r.seconds, "docs_per_second": Double(r.docs.count) / max(r.seconds, 1e-9), "tokens": r.tokens]
            if let s = specs[r.task] {
                var c: [String: Any] = ["task": s.name, "task_file": s.file, "output_type": s.outputType.rawValue,
                              "test_split": s.testSplit as Any? ?? NSNull(), "validation_split": s.validationSplit as Any? ?? NSNull(),
                              "training_split": s.trainingSplit as Any? ?? NSNull(), "fewshot_split": s.fewshotSplit as Any? ?? NSNull(),
                              "doc_to_text": s.docToText, "doc_to_target": s.docToTarget,
                              "target_delimiter": s.targetDelimiter, "fewshot_delimiter": s.fewshotDelimiter,
                              "num_fewshot": r.numFewshot, "fewshot_seed": r.seed, "metrics": s.metrics.map(\.rawValue)]
                if s.outputType == .generateUntil {
                    c["generation_kwargs"] = ["until": s.generation.until, "max_gen_toks": s.generation.maxGenToks, "do_sample": false]
                }
                configs[k] = c
                versions[k] = s.version ?? "1.0"
            }
        }
        let top: [String: Any] = [
            "results": res, "n-shot": nshot, "n-samples": nsamples, "configs": configs, "versions": versions,
            "config": ["model": "turing", "checkpoint": run.checkpoint, "format": run.format, "layout": run.layout,
                       "weights_hash": run.weightsHash, "limit": run.limit as Any? ?? NSNull(), "data_dir": run.dataDir],
            "turing_version": turingVersion,
            "timings": ["total_seconds": totalSeconds, "tasks": timings],
            "date": ISO8601DateFormatter().string(from: Date()),
        ]
        return try JSONSerialization.data(withJSONObject: top, options: [.prettyPrinted, .sortedKeys])
    }

    public static func samplesJSONL(_ r: TaskResult) throws -> Data {
        var out = Data()
        for d in r.docs {
            var o: [String: Any] = [
                "doc_id": d.docID,
                "requests": d.requests.map { ["context": $0.context, "continuation": $0.continuation] },
                "loglikelihoods": d.loglikelihoods, "is_greedy": d.isGreedy, "target": d.target,
                "metrics": Dictionary(uniqueKeysWithValues: d.metrics.map { ($0.key.rawValue, $0.value) }),
            ]
            if !d.choices.isEmpty { o["choices"] = d.choices }
            if let g = d.gold { o["gold"] = g }
            if let p = d.prediction { o["prediction"] = p }
            if let g = d.generated { o["generated"] = g }
            if let w = d.words, let b = d.bytes { o["words"] = w; o["bytes"] = b }
            out.append(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]))
            out.append(0x0A)
        }
        return out
    }

    /// lm-eval's markdown table: Tasks | Version | Filter | n-shot | Metric | | Value | | Stderr.
    public static func table(_ results: [TaskResult], specs: [String: TaskSpec]) -> String {
        var rows = [["Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"]]
        for r in results {
            for (i, m) in r.metrics.enumerated() {
                let arrow = [.perplexity, .wordPerplexity, .bytePerplexity, .bitsPerByte].contains(m.metric) ? "↓" : "↑"
                rows.append([i == 0 ? r.task : "", i == 0 ? (specs[r.task]?.version ?? "1") : "", "none", String(r.numFewshot),
                             m.name, arrow, String(format: "%.4f", m.value), "±",
                             m.stderr.map { String(format: "%.4f", $0) } ?? "N/A"])
            }
        }
        var widths = [Int](repeating: 0, count: rows[0].count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ r: [String]) -> String {
            "|" + r.enumerated().map { i, c in
                let pad = String(repeating: " ", count: widths[i] - c.count)
                return " " + ((i == 6 || i == 8) ? pad + c : c + pad) + " "
            }.joined(separator: "|") + "|"
        }
        var out = [line(rows[0])]
        out.append("|" + widths.enumerated().map { i, w in (i == 6 || i == 8) ? String(repeating: "-", count: w + 1) + ":" : String(repeating: "-", count: w + 2) }.joined(separator: "|") + "|")
        out += rows.dropFirst().map(line)
        return out.joined(separator: "\n")
    }
}
