// `turing eval` against lm-evaluation-harness 0.4.13 itself (Tests/Fixtures/lmeval, written by
// scripts/fixtures_lmeval.py on Tests/Fixtures/models/gpt2-tiny-tok): for lambada_openai, piqa, winogrande, boolq,
// wic, anli_r1, race, hellaswag (all of klosax's bz2 text) and lambada_openai_gen (generate_until) at 0, 1 and
// 3 shots over the first 20 documents of a 60-document subset of ../shared/data, and tinyshakespeare
// (loglikelihood_rolling, the 52 speeches of its first 300 lines) at 0 shots: identical prompts, identical
// per-document decisions and generated strings, identical word/byte counts, per-request log-likelihoods within
// float32 summation error, metrics within 1e-6 absolute (perplexities and the perplexity bootstrap stderr
// within 1e-5 relative); and the same for a tiny Llama-style model with a SentencePiece tokenizer (lm-eval adds BOS).
// Skips when ../shared is absent.

import XCTest
import TestSupport
import Foundation
@testable import Evaluation
import Tasks
import Engine
import Checkpoints
import Model
import Tokenizers

final class LMEvalFidelityTests: XCTestCase {
    static let fixtures = Paths.fixture()
    static var shared: URL { Paths.sharedData }

    struct Expected: Decodable {
        struct Req: Decodable { let context: String; let continuation: String }
        struct Doc: Decodable {
            let doc_id: Int; let requests: [Req]; let loglikelihoods: [Double]; let is_greedy: [Bool]; let metrics: [String: Double]
            let generated: String?; let words: Int?; let bytes: Int?
        }
        let task: String; let num_fewshot: Int; let limit: Int; let subset_lines: Int
        let metrics: [String: MetricOrString]; let docs: [Doc]
    }
    enum MetricOrString: Decodable {
        case number(Double), text(String)
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let x = try? c.decode(Double.self) { self = .number(x) } else { self = .text(try c.decode(String.self)) }
        }
        var number: Double? { if case .number(let x) = self { return x }; return nil }
    }

    /// The first `n` lines of each source file, under the names the fixture task YAMLs use.
    static func makeSubsets(_ n: Int) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("turing-lmeval-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let copies = [("lambada/lambada_test.jsonl", "lambada_openai.jsonl"), ("piqa/valid.jsonl", "piqa.jsonl"),
                      ("piqa/valid-labels.lst", "piqa-labels.lst"), ("winogrande/dev.jsonl", "winogrande.jsonl"),
                      ("boolq/val.jsonl", "boolq.jsonl"), ("wic/val.jsonl", "wic.jsonl"), ("anli/R1/test.jsonl", "anli_r1.jsonl"),
                      ("race/test/middle.jsonl", "race.jsonl"), ("tinyshakespeare/input.txt", "tinyshakespeare.txt")]
        let hs = dir.appendingPathComponent("hellaswag_val_full.txt.bz2")
        if !FileManager.default.fileExists(atPath: hs.path) {
            try FileManager.default.copyItem(at: shared.appendingPathComponent("hellaswag/hellaswag_val_full.txt.bz2"), to: hs)
        }
        for (src, dst) in copies {
            let text = try String(contentsOf: shared.appendingPathComponent(src), encoding: .utf8)
            let lines = text.components(separatedBy: "\n").prefix(dst == "tinyshakespeare.txt" ? 300 : n)
            try (lines.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent(dst), atomically: true, encoding: .utf8)
        }
        return dir
    }

    static var setup: (Evaluator, URL)?
    func evaluator() throws -> (Evaluator, URL) {
        if let s = Self.setup { return s }
        let vocab = Self.shared.appendingPathComponent("megatron_indexed/gpt2-tiny-vocab.json")
        guard FileManager.default.fileExists(atPath: vocab.path) else { throw XCTSkip("needs \(vocab.path) (../shared absent)") }
        let tok = try GPT2Tokenizer(vocabFile: vocab.path, mergesFile: Self.shared.appendingPathComponent("megatron_indexed/gpt2-tiny-merges.txt").path)
        let model = DecoderModel(weights: try DecoderWeights(try HFAdapter.load(Self.fixtures.appendingPathComponent("models/gpt2-tiny-tok"))))
        let s = (try Evaluator(model: model, tokenizer: tok), try Self.makeSubsets(60))
        Self.setup = s
        return s
    }

    /// The trained demo model (checkpoints/demo) and the shipped tasks folder, whose demo data ships in tasks/data.
    static var demoSetup: (Evaluator, URL, String)?
    func demoEvaluator() throws -> (Evaluator, URL, String) {
        if let s = Self.demoSetup { return s }
        let repo = Self.fixtures.deletingLastPathComponent().deletingLastPathComponent()
        let ckpt = repo.appendingPathComponent("checkpoints/demo")
        let tok = try GPT2Tokenizer(vocabFile: ckpt.appendingPathComponent("vocab.json").path, mergesFile: ckpt.appendingPathComponent("merges.txt").path)
        let model = DecoderModel(weights: try DecoderWeights(try TuringFormat.load(ckpt).checkpoint))
        let tasks = repo.appendingPathComponent("tasks")
        let s = (try Evaluator(model: model, tokenizer: tok), tasks, tasks.path)
        Self.demoSetup = s
        return s
    }

    /// A seeded random LlamaForCausalLM with a SentencePiece-converted tokenizer.json that adds BOS
    /// (scripts/fixtures_lmeval_llama.py): lm-eval's BOS rules; the tokenizer is found by TokenizerLoader.
    static var llamaSetup: (Evaluator, URL)?
    func llamaEvaluator() throws -> (Evaluator, URL) {
        if let s = Self.llamaSetup { return s }
        let (_, data) = try evaluator()   // the same shared-data subsets (skips when ../shared is absent)
        let dir = Self.fixtures.appendingPathComponent("models/llama-tiny-sp")
        let tok = try TokenizerLoader.load(path: dir.path).tokenizer
        XCTAssertTrue(tok is HFTokenizer, "the folder's tokenizer.json is preferred, as transformers does")
        let model = DecoderModel(weights: try DecoderWeights(try HFAdapter.load(dir)))
        let s = (try Evaluator(model: model, tokenizer: tok), data)
        Self.llamaSetup = s
        return s
    }

    func check(_ task: String, shots: Int, demo: Bool = false, llama: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        let lmevalTasks = Self.fixtures.appendingPathComponent("lmeval/tasks").path
        let (ev, data, tasksDir) = demo ? try demoEvaluator()
            : llama ? try { let (e, d) = try llamaEvaluator(); return (e, d, lmevalTasks) }()
            : try { let (e, d) = try evaluator(); return (e, d, lmevalTasks) }()
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("lmeval/\(llama ? "llama_" : "")\(task)_\(shots)shot.json")))
        let spec = try TaskSpec.load(named: task, in: tasksDir)
        let loaded = try LoadedTask(spec: spec, dataDir: data.path)
        let r = try ev.evaluate(loaded, numFewshot: shots, limit: exp.limit, seed: 1234)
        XCTAssertEqual(r.docs.count, exp.docs.count, file: file, line: line)
        var worstLL = 0.0
        for (got, want) in zip(r.docs, exp.docs) {
            XCTAssertEqual(got.requests.map(\.context), want.requests.map(\.context), "\(task) \(shots)-shot doc \(want.doc_id): contexts", file: file, line: line)
            XCTAssertEqual(got.requests.map(\.continuation), want.requests.map(\.continuation), "\(task) \(shots)-shot doc \(want.doc_id): continuations", file: file, line: line)
            XCTAssertEqual(got.isGreedy, want.is_greedy, "\(task) \(shots)-shot doc \(want.doc_id): is_greedy", file: file, line: line)
            XCTAssertEqual(got.generated, want.generated, "\(task) \(shots)-shot doc \(want.doc_id): generated text", file: file, line: line)
            XCTAssertEqual(got.words, want.words, "\(task) doc \(want.doc_id): words", file: file, line: line)
            XCTAssertEqual(got.bytes, want.bytes, "\(task) doc \(want.doc_id): bytes", file: file, line: line)
            XCTAssertEqual(got.loglikelihoods.count, want.loglikelihoods.count, "\(task) doc \(want.doc_id): log-likelihood count", file: file, line: line)
            for (k, v) in want.metrics where k != "perplexity" {
                XCTAssertEqual(Metric(rawValue: k).flatMap { got.metrics[$0] }, v, "\(task) \(shots)-shot doc \(want.doc_id): \(k)", file: file, line: line)
            }
            for (a, b) in zip(got.loglikelihoods, want.loglikelihoods) {
                let err = abs(a - b) / max(1, abs(b))
                worstLL = max(worstLL, err)
                XCTAssertLessThan(err, 2e-5, "\(task) \(shots)-shot doc \(want.doc_id): ll \(a) vs lm-eval \(b)", file: file, line: line)
            }
        }
        var table = "\(task) \(shots)-shot (max rel ll err \(String(format: "%.1e", worstLL))):"
        for m in r.metrics {
            guard let want = exp.metrics["\(m.name),none"]?.number else { XCTFail("lm-eval has no \(m.name)", file: file, line: line); continue }
            let wantSE = exp.metrics["\(m.name)_stderr,none"]?.number
            if ["word_perplexity", "byte_perplexity"].contains(m.name) {
                XCTAssertLessThan(abs(m.value - want) / want, 1e-5, "\(task) \(m.name) \(m.value) vs \(want)", file: file, line: line)
                XCTAssertNil(m.stderr, "lm-eval gives \(m.name) no stderr", file: file, line: line)
                XCTAssertEqual(exp.metrics["\(m.name)_stderr,none"]?.number, nil, file: file, line: line)
            } else if m.name == "perplexity" {
                XCTAssertLessThan(abs(m.value - want) / want, 1e-5, "\(task) \(shots)-shot perplexity \(m.value) vs \(want)", file: file, line: line)
                if let w = wantSE, let g = m.stderr { XCTAssertLessThan(abs(g - w) / w, 1e-5, "perplexity stderr \(g) vs \(w)", file: file, line: line) }
            } else {
                XCTAssertEqual(m.value, want, accuracy: 1e-6, "\(task) \(shots)-shot \(m.name)", file: file, line: line)
                if let w = wantSE { XCTAssertEqual(m.stderr ?? .nan, w, accuracy: 1e-6, "\(task) \(shots)-shot \(m.name) stderr", file: file, line: line) }
            }
            table += String(format: "  %@ turing %.8g ± %.6g | lm-eval %.8g ± %.6g", m.name, m.value, m.stderr ?? .nan, want, wantSE ?? .nan)
        }
        print(table)
    }

    func testLambadaOpenAI() throws { for k in [0, 1, 3] { try check("lambada_openai", shots: k) } }
    func testPiqa() throws { for k in [0, 1, 3] { try check("piqa", shots: k) } }
    func testWinogrande() throws { for k in [0, 1, 3] { try check("winogrande", shots: k) } }
    func testBoolq() throws { for k in [0, 1, 3] { try check("boolq", shots: k) } }
    func testWic() throws { for k in [0, 1, 3] { try check("wic", shots: k) } }
    func testAnliR1() throws { for k in [0, 1, 3] { try check("anli_r1", shots: k) } }
    func testRace() throws { for k in [0, 1, 3] { try check("race", shots: k) } }
    func testHellaswag() throws { for k in [0, 1, 3] { try check("hellaswag", shots: k) } }
    func testLambadaGenerateUntil() throws { for k in [0, 1, 3] { try check("lambada_openai_gen", shots: k) } }
    func testTinyShakespeareRolling() throws {
        try check("tinyshakespeare", shots: 0)
        // the subset must exercise more than one rolling window (a speech longer than the model's positions)
        let (ev, data) = try evaluator()
        let adapter = try XCTUnwrap(ev.model as? LMEvalAdapter)
        let task = try LoadedTask(spec: TaskSpec.load(named: "tinyshakespeare", in: Self.fixtures.appendingPathComponent("lmeval/tasks").path), dataDir: data.path)
        let longest = task.evalDocs.map { doc -> Int in
            guard case .string(let t)? = doc["text"] else { return 0 }
            return encodePlain(adapter.tokenizer, t).count
        }.max() ?? 0
        XCTAssertGreaterThan(longest, adapter.model.config.maxPositions)
    }
    func testLlamaSentencePieceBOS() throws {
        for k in [0, 1] { try check("lambada_openai", shots: k, llama: true) }
        for k in [0, 1] { try check("piqa", shots: k, llama: true) }
        try check("lambada_openai_gen", shots: 0, llama: true)
        try check("tinyshakespeare", shots: 0, llama: true)
        let (ev, _) = try llamaEvaluator()
        XCTAssertEqual(lmEvalEncode(try XCTUnwrap(ev.model as? LMEvalAdapter).tokenizer, "Hello").first, 1, "lm-eval encodes with BOS for this tokenizer")
    }
    /// Needs no ../shared: the demo model, its tokenizer and the task data ship with Turing.
    func testDemoFactsGenerateUntil() throws { for k in [0, 1, 3] { try check("demo_facts_gen", shots: k, demo: true) } }
}
