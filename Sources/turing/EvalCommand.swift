// turing eval: lm-evaluation-harness 0.4.13 tasks (tasks/*.yaml) scored on a checkpoint, at one or several
// shot counts; writes results.json + samples_<task>.jsonl into the output folder and prints lm-eval's table.
//
// --num-fewshot K overrides every task's default shot count; --shots 0,1,K runs each count in turn (one
// results.json, keys "<task>@<k>shot"). --limit N scores the first N documents, as lm-eval's --limit.
// Task data: --data-dir (default $TURING_SHARED_DATA, else ../shared/data), beside the YAML, the download cache
// (--data-cache), then the YAML's pinned url unless --offline (TaskDataOptions, Tasks.DataLocator).

import ArgumentParser
import Foundation
import TuringKit
import TensorCore
import Engine
import Evaluation
import Model
import Tasks

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval", abstract: "Zero-/few-shot tasks scored exactly as lm-evaluation-harness 0.4 scores them.")

    @OptionGroup var model: CheckpointOptions
    @OptionGroup var layout: LayoutOptions
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Comma-separated task names (files in --tasks-dir).") var tasks: String
    @Option(name: .customLong("num-fewshot"), help: "Shots for every task (default: each task's num_fewshot).") var numFewshot: Int?
    @Option(help: "Several shot counts in one run, e.g. 0,1,5.") var shots: String?
    @Option(help: "Score only the first N documents of each task.") var limit: Int?
    @OptionGroup var data: TaskDataOptions
    @Option(name: .customLong("tasks-dir"), help: "Folder of task YAMLs (default: ./tasks, or the repository's).") var tasksDir: String?
    @Option(help: "Output folder (default: results/<timestamp>-<checkpoint>).") var output: String?
    @Option(help: "Few-shot sampling seed (lm-eval's fewshot_random_seed).") var seed: Int = 1234
    @Option(name: .customLong("cache-dir"), help: "Scored requests per model (an interrupted run resumes from them).") var cacheDir = "results/.cache"
    @Flag(name: .customLong("no-cache"), help: "Score every request afresh and keep no cache.") var noCache = false

    func validate() throws {
        if numFewshot != nil && shots != nil { throw ValidationError("--num-fewshot and --shots are exclusive") }
        if let k = numFewshot, k < 0 { throw ValidationError("--num-fewshot must be >= 0") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be >= 1") }
        if let s = shots, parseShots(s) == nil { throw ValidationError("--shots must be comma-separated non-negative integers, found \"\(s)\"") }
        if let v = shots.flatMap(parseShots), let dup = v.first(where: { k in v.filter { $0 == k }.count > 1 }) {
            throw ValidationError("--shots lists \(dup) more than once (\"\(shots!)\"); each shot count is run once and keyed by its count")
        }
    }

    func parseShots(_ s: String) -> [Int]? {
        let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        return v.map { $0! }
    }

    func run() throws {
        let t0 = now()
        let tdir = tasksDir ?? defaultTasksDir()
        let ddir = data.resolvedDataDir
        let locator = data.locator()
        let names = tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let specs = try names.map { try TaskSpec.load(named: $0, in: tdir) }
        for s in specs where s.outputType == .loglikelihoodRolling {
            if let k = (shots.flatMap(parseShots) ?? [numFewshot ?? s.numFewshot]).first(where: { $0 > 0 }) {
                throw ValidationError("\(s.name) is a loglikelihood_rolling task: each document is scored on its own, so \(k)-shot has no meaning (lm-eval ignores the shots); run it at 0 shots")
            }
        }
        let loaded = try specs.map { try LoadedTask(spec: $0, data: locator) }
        let weights = try model.open(layout, compute, weightsHash: true)
        let (engine, tokOpt, ckpt) = (weights.engine, weights.tokenizer, weights.checkpoint)
        let hash = try weights.weightsHash()
        var cache: RequestCache? = nil
        if !noCache {
            // keyed by the weights' hash, the layout (layouts agree to ~1e-6, not bit for bit), the weights'
            // dtype with the KV cache's ("kvf16": a bf16 model's float16 cache, whose bits differ from the f32
            // cache before it) and the kernels' generation ("tk1": Turing's own; every ISA gives the same bits)
            let dt = compute.dtype == .float32 ? "" : "-\(compute.dtype.rawValue)-kvf16"
            let c = try RequestCache(directory: URL(fileURLWithPath: cacheDir), modelHash: "\(hash)-tp\(layout.tp)pp\(layout.pp)\(dt)-tk1")
            if c.count > 0 { log("request cache \(c.url.path): \(c.count) scored requests reused") }
            cache = c
        }
        let evaluator = try Evaluator(model: engine, tokenizer: tokOpt!, cache: cache)
        var results: [TaskResult] = []
        for task in loaded {
            for k in shots.flatMap(parseShots) ?? [numFewshot ?? task.spec.numFewshot] {
                let tt = now()
                log("\(task.spec.name), \(k)-shot:")
                let r = try evaluator.evaluate(task, numFewshot: k, limit: limit, seed: seed) { done, total, toks in
                    progress(done, total, tt, unit: "docs", tokens: toks)
                }
                log("")
                results.append(r)
            }
        }
        let out = URL(fileURLWithPath: output ?? defaultOutput())
        let multi = Set(results.map(\.numFewshot)).count > 1
        let specMap = Dictionary(specs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let run = RunInfo(checkpoint: model.checkpoint, format: ckpt.format, layout: "tp\(layout.tp)xpp\(layout.pp)" + (compute.dtype == .float32 ? "" : " \(compute.dtype.rawValue)"),
                          weightsHash: hash, limit: limit, dataDir: ddir)
        for r in results {
            let name = multi ? "samples_\(r.task)_\(r.numFewshot)shot.jsonl" : "samples_\(r.task).jsonl"
            try writeFileAtomically(try Report.samplesJSONL(r), to: out.appendingPathComponent(name))
        }
        try writeFileAtomically(try Report.resultsJSON(results, specs: specMap, run: run, totalSeconds: now() - t0),
                                   to: out.appendingPathComponent("results.json"))
        print(Report.table(results, specs: specMap))
        log(String(format: "results -> %@ (%.1f s)", out.path, now() - t0))
    }

    func defaultTasksDir() -> String {
        if FileManager.default.fileExists(atPath: "tasks") { return "tasks" }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tasks").path
    }

    func defaultOutput() -> String {
        let f = DateFormatter(); f.dateFormat = "yyyyMMdd-HHmmss"; f.timeZone = TimeZone(identifier: "UTC")
        let name = URL(fileURLWithPath: model.checkpoint).standardizedFileURL.lastPathComponent
        return "results/\(f.string(from: Date()))-\(name)"
    }
}

