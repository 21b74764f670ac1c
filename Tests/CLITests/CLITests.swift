import XCTest
import TestSupport
import Foundation

/// The `turing` binary end to end: outputs, exit statuses, and that bad input loses nothing.
final class CLITests: XCTestCase {
    static var binary: URL {
        // XCTest runs from the products directory that also holds `turing`.
        let dir = Bundle.main.bundleURL
        return (dir.lastPathComponent.hasSuffix(".xctest") ? dir.deletingLastPathComponent() : dir).appendingPathComponent("turing")
    }

    static var shared: URL { Paths.sharedData }

    @discardableResult
    func run(_ args: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        let o = Pipe(), e = Pipe(), i = Pipe()
        p.standardOutput = o; p.standardError = e; p.standardInput = i
        try p.run()
        if let stdin { i.fileHandleForWriting.write(Data(stdin.utf8)) }
        try i.fileHandleForWriting.close()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    func stories() throws -> String {
        let bin = Self.shared.appendingPathComponent("models/stories260K/stories260K.bin")
        guard FileManager.default.fileExists(atPath: bin.path) else { throw XCTSkip("shared data not found: \(bin.path)") }
        return bin.path
    }

    func tmp() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("turing-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// finetune at TP 2 x PP 2 resumes at another layout with the losses of an uninterrupted run, and refuses
    /// to resume a save directory with a model of another architecture.
    func testFinetuneResumesAcrossLayoutsAndRefusesAnotherArchitecture() throws {
        let d = try tmp()
        let data = d.appendingPathComponent("train.jsonl")
        try String(repeating: "{\"text\": \"the sky is blue. the grass is green. a lemon is sour. one two three four five.\"}\n", count: 30)
            .write(to: data, atomically: true, encoding: .utf8)
        let base = ["finetune", "--checkpoint", "checkpoints/demo", "--data", data.path, "--seq-length", "24", "--micro-batch", "2",
                    "--global-batch", "4", "--steps", "4", "--lr", "1e-3"]
        func losses(_ out: String) -> [Double] {
            out.split(separator: "\n").filter { $0.hasPrefix("step") }
                .compactMap { Double($0.split(separator: "|")[1].replacingOccurrences(of: "loss", with: "").trimmingCharacters(in: .whitespaces)) }
        }
        func sameLosses(_ a: [Double], _ b: [Double]) {
            XCTAssertEqual(a.count, 4); XCTAssertEqual(b.count, 4)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 2e-4, "\(a) vs \(b)") }
        }
        let full = try run(base + ["--tp", "2", "--pp", "2"])
        XCTAssertEqual(full.status, 0, full.err)
        /// Steps 1-2 with `first`, stopped by --exit-interval, then steps 3-4 with `then`: every loss, and the second run's log.
        func interrupted(_ first: [String], _ then: [String]) throws -> ([Double], String) {
            let r1 = try run(base + first + ["--exit-interval", "2"])
            XCTAssertEqual(r1.status, 0, r1.err)
            let r2 = try run(base + then)
            XCTAssertEqual(r2.status, 0, r2.err)
            return (losses(r1.out) + losses(r2.out), r2.err)
        }
        let a = losses(full.out)
        let save = d.appendingPathComponent("run").path
        let (b, bLog) = try interrupted(["--tp", "2", "--pp", "2", "--save", save], ["--dp", "2", "--save", save])
        XCTAssertTrue(bLog.contains("resuming from"), bLog)
        sameLosses(a, b)
        // the same through a Megatron-LM save (weights, AdamW moments and iteration read back from its optimizer state)
        let meg = d.appendingPathComponent("meg").path
        let (c, cLog) = try interrupted(["--tp", "2", "--pp", "2", "--save-megatron", meg], ["--pp", "2", "--save-megatron", meg])
        XCTAssertTrue(cLog.contains("Megatron-LM legacy, with its optimizer state) at step 2"), cLog)
        sameLosses(a, c)
        // another architecture into the same save directory
        let cfg = d.appendingPathComponent("other.json")
        try #"{"vocab_size": 617, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_positions": 64}"#.write(to: cfg, atomically: true, encoding: .utf8)
        let bad = try run(["finetune", "--config", cfg.path, "--tokenizer", "checkpoints/demo", "--data", data.path, "--seq-length", "24", "--steps", "5", "--save", save])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("another architecture"), bad.err)
    }

    func testGenerateGreedyIsTheLlama2cStoryAndLayoutsAgree() throws {
        let ckpt = try stories()
        let a = try run(["generate", "--checkpoint", ckpt, "--prompt", "Once upon a time", "--max-tokens", "40"])
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertTrue(a.out.hasPrefix("Once upon a time, there was a little girl named Lily. She loved to play outside in the park."), a.out)
        let b = try run(["generate", "--checkpoint", ckpt, "--prompt", "Once upon a time", "--max-tokens", "40", "--tp", "2", "--pp", "2"])
        XCTAssertEqual(b.out, a.out)
        let s = try run(["generate", "--checkpoint", ckpt, "--prompt", "Once upon a time", "--max-tokens", "40", "--stop", "Lily"])
        XCTAssertEqual(s.out, "Once upon a time, there was a little girl named \n")
    }

    func testSeededSamplingIsReproducible() throws {
        let ckpt = try stories()
        let args = ["generate", "--checkpoint", ckpt, "--prompt", "The dog", "--max-tokens", "30", "--temperature", "1", "--top-p", "0.9", "--seed", "5"]
        let a = try run(args), b = try run(args)
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertEqual(a.out, b.out)
        let c = try run(args.dropLast() + ["6"])
        XCTAssertNotEqual(a.out, c.out)
    }

    func testScoreWritesOneLinePerRequestInOrder() throws {
        let ckpt = try stories(), d = try tmp()
        let reqs = d.appendingPathComponent("in.jsonl"), out = d.appendingPathComponent("out.jsonl")
        try """
        {"context": "Lily went to the park. She saw a big", "continuation": " dog."}
        {"context": "Lily went to the park. She saw a big ", "continuation": "spoon moon."}
        {"context": "", "continuation": "Once upon a time"}
        """.write(to: reqs, atomically: true, encoding: .utf8)
        let r = try run(["score", "--checkpoint", ckpt, "--requests", reqs.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.err)
        struct Line: Decodable { let logprob: Double; let greedy: Bool; let tokens: Int }
        let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines.allSatisfy { $0.logprob < 0 && $0.tokens > 0 })
        XCTAssertGreaterThan(lines[0].logprob, lines[1].logprob)   // a dog is likelier than a spoon moon
    }

    func testRollingScoreOfAShortTextEqualsItsLoglikelihoodAfterThePrefixToken() throws {
        // one window: the text's tokens predicted after the prefix token, as an empty context is scored
        let ckpt = try stories(), d = try tmp()
        let texts = ["Once upon a time", "Lily went to the park. She saw a big dog."]
        let roll = d.appendingPathComponent("roll.jsonl"), pairs = d.appendingPathComponent("pairs.jsonl")
        let o1 = d.appendingPathComponent("o1.jsonl"), o2 = d.appendingPathComponent("o2.jsonl")
        func json(_ o: [String: String]) throws -> String { String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) }
        try texts.map { try json(["text": $0]) }.joined(separator: "\n").write(to: roll, atomically: true, encoding: .utf8)
        try texts.map { try json(["context": "", "continuation": $0]) }.joined(separator: "\n").write(to: pairs, atomically: true, encoding: .utf8)
        let r1 = try run(["score", "--rolling", "--checkpoint", ckpt, "--requests", roll.path, "--output", o1.path])
        let r2 = try run(["score", "--checkpoint", ckpt, "--requests", pairs.path, "--output", o2.path])
        XCTAssertEqual(r1.status, 0, r1.err); XCTAssertEqual(r2.status, 0, r2.err)
        struct Line: Decodable { let logprob: Double; let tokens: Int }
        func read(_ u: URL) throws -> [Line] {
            try String(contentsOf: u, encoding: .utf8).split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        }
        let (a, b) = (try read(o1), try read(o2))
        XCTAssertEqual(a.count, 2); XCTAssertEqual(b.count, 2)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.tokens, y.tokens)
            XCTAssertGreaterThan(x.tokens, 3)
            XCTAssertEqual(x.logprob, y.logprob, accuracy: 1e-6)
        }
    }

    func testMalformedLineNamesFileAndLineAndWritesNothing() throws {
        let ckpt = try stories(), d = try tmp()
        let reqs = d.appendingPathComponent("in.jsonl"), out = d.appendingPathComponent("out.jsonl")
        try "{\"context\": \"a\", \"continuation\": \" b\"}\n{\"context\": \"a\"\n".write(to: reqs, atomically: true, encoding: .utf8)
        let r = try run(["score", "--checkpoint", ckpt, "--requests", reqs.path, "--output", out.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("in.jsonl:2"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d.path), ["in.jsonl"])
    }

    func testBadCheckpointsAndLayoutsExitNonZeroWithAReason() throws {
        let d = try tmp()
        let missing = try run(["generate", "--checkpoint", d.appendingPathComponent("nope").path, "--prompt", "x"])
        XCTAssertNotEqual(missing.status, 0); XCTAssertTrue(missing.err.contains("checkpoint not found"), missing.err)
        let ckpt = try stories()
        let truncated = d.appendingPathComponent("model.bin")
        try Data(try Data(contentsOf: URL(fileURLWithPath: ckpt)).prefix(5000)).write(to: truncated)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: ckpt).deletingLastPathComponent().appendingPathComponent("tok512.bin"),
                                         to: d.appendingPathComponent("tok512.bin"))
        let t = try run(["generate", "--checkpoint", truncated.path, "--prompt", "x"])
        XCTAssertNotEqual(t.status, 0); XCTAssertTrue(t.err.contains("truncated"), t.err)
        let tp = try run(["generate", "--checkpoint", ckpt, "--prompt", "x", "--tp", "3"])
        XCTAssertNotEqual(tp.status, 0); XCTAssertTrue(tp.err.contains("does not divide the 8 attention heads"), tp.err)
        let pp = try run(["generate", "--checkpoint", ckpt, "--prompt", "x", "--pp", "9"])
        XCTAssertNotEqual(pp.status, 0); XCTAssertTrue(pp.err.contains("larger than the model's 5 layers"), pp.err)
    }

    func testTokenizeRoundTripWithMegatronVocabFiles() throws {
        let v = Self.shared.appendingPathComponent("gpt2_tokenizer/gpt2-vocab.json").path
        let m = Self.shared.appendingPathComponent("gpt2_tokenizer/gpt2-merges.txt").path
        guard FileManager.default.fileExists(atPath: v) else { throw XCTSkip("shared data not found: \(v)") }
        let text = "Hello world, it's   me 🤗\n\n<|endoftext|>"
        let enc = try run(["tokenize", "--vocab-file", v, "--merge-file", m], stdin: text)
        XCTAssertEqual(enc.status, 0, enc.err)
        // ids printed by HF GPT2TokenizerFast for the same text
        XCTAssertEqual(enc.out.trimmingCharacters(in: .whitespacesAndNewlines), "[15496,995,11,340,338,220,220,502,12520,97,245,628,50256]")
        let dec = try run(["tokenize", "--decode", "--vocab-file", v, "--merge-file", m], stdin: enc.out)
        XCTAssertEqual(dec.out, text)
    }

    /// `--tokenizer` takes a file or a folder of any kind; ids as the libraries give them (sentencepiece
    /// `encode`; HF tokenizers `encode(add_special_tokens=...)`), printed by scripts' venv for this text.
    func testTokenizeReadsSentencePieceFileAndTokenizerJSONFolder() throws {
        let kinds = Paths.packageRoot.appendingPathComponent("Tests/Fixtures/tokenizers/kinds")
        let text = "Hello world <s> 12 日本"
        let sp = try run(["tokenize", "--tokenizer", kinds.appendingPathComponent("sp_bpe/tokenizer.model").path], stdin: text)
        XCTAssertEqual(sp.status, 0, sp.err)
        XCTAssertEqual(sp.out.trimmingCharacters(in: .whitespacesAndNewlines), "[350,508,706,652,640,710,780,703,757,761,703,862,864]")
        let hf = try run(["tokenize", "--tokenizer", kinds.appendingPathComponent("hf_llama3").path], stdin: text)
        XCTAssertEqual(hf.out.trimmingCharacters(in: .whitespacesAndNewlines), "[39,502,78,662,564,82,29,220,16,17,220,162,245,98,999,105]", hf.err)
        let bos = try run(["tokenize", "--special-tokens", "--tokenizer", kinds.appendingPathComponent("hf_llama3").path], stdin: text)
        XCTAssertEqual(bos.out.trimmingCharacters(in: .whitespacesAndNewlines), "[1500,39,502,78,662,564,82,29,220,16,17,220,162,245,98,999,105]", bos.err)
        let dec = try run(["tokenize", "--decode", "--tokenizer", kinds.appendingPathComponent("hf_llama3").path], stdin: hf.out)
        XCTAssertEqual(dec.out, text)
    }

    /// The README's main job: `turing` with no arguments runs the demo on checkpoints/demo.
    /// --data-cache and --offline reach the task loader: with an empty cache the error lists every place
    /// looked; with the pinned files placed in the cache layout, eval reads them without a network.
    func testEvalOfflineReadsTheDataCacheAndNamesWhereItLooked() throws {
        let piqa = Self.shared.appendingPathComponent("piqa")
        guard FileManager.default.fileExists(atPath: piqa.appendingPathComponent("valid.jsonl").path) else { throw XCTSkip("shared data absent") }
        let repo = Paths.packageRoot
        let d = try tmp(), cache = d.appendingPathComponent("cache")
        let args = ["eval", "--checkpoint", repo.appendingPathComponent("checkpoints/demo").path, "--tasks", "piqa",
                    "--tasks-dir", repo.appendingPathComponent("tasks").path, "--data-dir", d.appendingPathComponent("none").path,
                    "--data-cache", cache.path, "--offline", "--limit", "3", "--no-cache", "--output", d.appendingPathComponent("out").path]
        let miss = try run(args)
        XCTAssertNotEqual(miss.status, 0)
        for part in ["data file piqa/valid.jsonl not found", "\(cache.path)/93503cc97c679e459b065c3d13e848282e44b2a25213985bed3e5d458abef72d/valid.jsonl",
                     "not downloaded from https://yonatanbisk.com/piqa/data/valid.jsonl because of --offline"] {
            XCTAssertTrue(miss.err.contains(part), "\(miss.err) lacks \(part)")
        }
        for (sha, name) in [("93503cc97c679e459b065c3d13e848282e44b2a25213985bed3e5d458abef72d", "valid.jsonl"),
                            ("b4192dc3a2a0363d9d60ccf79800cbbe2f32ebb17726efdde6970e0b8131bceb", "valid-labels.lst")] {
            try FileManager.default.createDirectory(at: cache.appendingPathComponent(sha), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: piqa.appendingPathComponent(name), to: cache.appendingPathComponent("\(sha)/\(name)"))
        }
        let hit = try run(args)
        XCTAssertEqual(hit.status, 0, hit.err)
        XCTAssertTrue(hit.out.contains("| piqa"), hit.out)
    }

    /// eval of a Megatron save at TP 2 x PP 2 (weights loaded straight into the ranks' pieces, no canonical
    /// copy) reports the weights hash and the metrics of the same weights loaded whole at TP 1, in Megatron
    /// and in Turing's own format.
    func testEvalOfASplitLoadMatchesTheWholeLoad() throws {
        let repo = Paths.packageRoot
        let demo = repo.appendingPathComponent("checkpoints/demo"), d = try tmp(), meg = d.appendingPathComponent("meg")
        let conv = try run(["convert", demo.path, "--to", "megatron", "--tp", "2", "--pp", "2", "--output", meg.path])
        XCTAssertEqual(conv.status, 0, conv.err)
        func eval(_ ckpt: URL, _ layout: [String], _ name: String) throws -> (hash: String, metrics: String) {
            let out = d.appendingPathComponent(name)
            let r = try run(["eval", "--checkpoint", ckpt.path, "--vocab-file", demo.appendingPathComponent("vocab.json").path,
                             "--merge-file", demo.appendingPathComponent("merges.txt").path, "--tasks", "demo_facts,demo_count",
                             "--tasks-dir", repo.appendingPathComponent("tasks").path, "--limit", "40", "--no-cache", "--output", out.path] + layout)
            XCTAssertEqual(r.status, 0, r.err)
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as! [String: Any]
            let hash = (json["config"] as? [String: Any])?["weights_hash"] as? String ?? ""
            let metrics = try JSONSerialization.data(withJSONObject: json["results"]!, options: [.sortedKeys])
            return (hash, String(decoding: metrics, as: UTF8.self))
        }
        let whole = try eval(demo, [], "turing-tp1"), megWhole = try eval(meg, [], "meg-tp1"), megSplit = try eval(meg, ["--tp", "2", "--pp", "2"], "meg-tp2pp2")
        XCTAssertTrue(whole.hash.hasPrefix("fnv1a64:"), whole.hash)
        XCTAssertEqual(megWhole.hash, whole.hash); XCTAssertEqual(megSplit.hash, whole.hash)
        XCTAssertEqual(megWhole.metrics, whole.metrics); XCTAssertEqual(megSplit.metrics, whole.metrics)
    }

    func testDemoModelBeatsChanceAndUntrainedDoesNot() throws {
        let r = try run([])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("checkpoints/demo"), r.out)
        XCTAssertTrue(r.out.contains("TP 2 x PP 2 in-process: identical text"), r.out)
        let rows = r.out.split(separator: "\n").filter { $0.hasPrefix("| demo_") }
        XCTAssertEqual(rows.count, 6, r.out)
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: CharacterSet.whitespaces) }
            let trained = Double(cells[3].dropLast())!, untrained = Double(cells[4].dropLast())!
            XCTAssertGreaterThanOrEqual(trained, 90, String(row))
            XCTAssertLessThanOrEqual(untrained, 70, String(row))
        }
    }
}
