// turing score: lm-evaluation-harness's loglikelihood (and loglikelihood_rolling) over a JSONL file.
//
// In:  {"context": "...", "continuation": "..."} per line   (--rolling: {"text": "..."})
// Out: {"logprob": x, "greedy": b, "tokens": n} per line, in input order (--rolling: {"logprob", "tokens"}).
// Tokenisation follows lm-eval 0.4: trailing whitespace of the context moves to the continuation;
// continuation ids = encode(context + continuation)[len(encode(context)):]; an empty context
// conditions on BOS / end-of-text. The output is written atomically.

import ArgumentParser
import Foundation
import TuringKit
import TensorCore
import Engine
import Evaluation
import Model
import Tokenizers

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "score", abstract: "Log-likelihoods of continuations, as lm-evaluation-harness computes them.")

    @OptionGroup var model: CheckpointOptions
    @OptionGroup var layout: LayoutOptions
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Input JSONL.") var requests: String
    @Option(help: "Output JSONL (written atomically).") var output: String
    @Flag(help: "Score whole texts ({\"text\": ...}) with rolling windows (perplexity).") var rolling = false

    func run() throws {
        guard let data = FileManager.default.contents(atPath: requests) else { throw CLIError("cannot read \(requests)") }
        let lines = try RequestFile.lines(data, file: requests)
        let loaded = try model.open(layout, compute)
        let (engine, tokOpt) = (loaded.engine, loaded.tokenizer)
        let tok = tokOpt!
        let scorer = Scorer(model: engine)
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        var out = Data()
        let t0 = now()
        if rolling {
            let texts = try lines.map { try RequestFile.decode(RequestFile.Text.self, $0.bytes, file: requests, line: $0.line) }
            // lm-eval's rolling windows through the adapter: the windows of a chunk of texts are scored
            // together (short texts batch), a text's summed in order; a score does not depend on its batch
            let adapter = try LMEvalAdapter(model: engine, tokenizer: tok)
            let chunk = 64
            for lo in stride(from: 0, to: texts.count, by: chunk) {
                let part = texts[lo..<min(lo + chunk, texts.count)].map(\.text)
                for r in try adapter.rollingScores(part) {
                    out.append(try enc.encode(["logprob": JSONNumberOrBool.number(r.logprob), "tokens": .number(Double(r.tokens))]))
                    out.append(0x0A)
                }
                progress(lo + part.count, texts.count, t0)
            }
        } else {
            let pairs = try lines.map { try RequestFile.decode(RequestFile.Pair.self, $0.bytes, file: requests, line: $0.line) }
            // lm-eval's encoding, as `turing eval` does it (errors name the file and line)
            let reqs = try LMEvalAdapter(model: engine, tokenizer: tok).encode(pairs.enumerated().map { i, p in
                TextPair(context: p.context, continuation: p.continuation, label: "\(requests):\(lines[i].line)")
            })
            let res = try scorer.loglikelihood(reqs) { done in progress(done, reqs.count, t0) }
            for r in res {
                out.append(try enc.encode(["logprob": JSONNumberOrBool.number(r.logprob), "greedy": .bool(r.isGreedy), "tokens": .number(Double(r.tokens))]))
                out.append(0x0A)
            }
        }
        try writeFileAtomically(out, to: URL(fileURLWithPath: output))
        log(String(format: "\nscored %d lines in %.2f s -> %@", lines.count, now() - t0, output))
    }
}

enum JSONNumberOrBool: Encodable {
    case number(Double), bool(Bool)
    func encode(to e: Encoder) throws {
        var c = e.singleValueContainer()
        switch self {
        case .number(let d): if d == d.rounded() && abs(d) < 1e15 { try c.encode(Int(d)) } else { try c.encode(d) }
        case .bool(let b): try c.encode(b)
        }
    }
}

/// One progress line on stderr (rank 0 only): done/total, rate, tokens/s when given, ETA.
func progress(_ done: Int, _ total: Int, _ t0: Double, unit: String = "", tokens: Int? = nil) {
    guard isPrimaryRank else { return }
    let dt = max(now() - t0, 1e-9)
    let eta = done > 0 ? dt / Double(done) * Double(total - done) : 0
    let u = unit.isEmpty ? "" : " \(unit)"
    let tok = tokens.map { String(format: "  %.0f tok/s", Double($0) / dt) } ?? ""
    FileHandle.standardError.write(Data(String(format: "\r  %d/%d%@  %.1f%@/s%@  ETA %.0fs ", done, total, u, Double(done) / dt, u, tok, eta).utf8))
}
