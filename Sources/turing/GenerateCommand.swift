// turing generate: text from one or more prompts, streamed to stdout as tokens are made.

import ArgumentParser
import Evaluation
import Foundation
import TuringKit
import Engine
import Model
import Tokenizers
import TensorCore

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate text from prompts with a KV cache.")

    @OptionGroup var model: CheckpointOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var layout: LayoutOptions
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Prompt (repeatable: several prompts are generated as one batch).") var prompt: [String] = []

    func run() throws {
        let tLoad = now()
        let loaded = try model.open(layout, compute)
        log(String(format: "[model loaded in %.2f s]", now() - tLoad))
        let (engine, tokOpt) = (loaded.engine, loaded.tokenizer)
        let tok = tokOpt!
        let prompts = prompt.isEmpty ? [""] : prompt
        var requests: [GenerationRequest] = []
        for p in prompts {
            var ids = tok.encode(p)
            if ids.isEmpty { ids = [try prefixToken(tok, engine.config)] }
            let stops = generationStopTokens(tok)
            requests.append(GenerationRequest(prompt: ids, maxTokens: sampling.maxTokens, sampling: sampling.params, stopTokens: stops))
        }
        var streams = prompts.indices.map { i in TextStream(tokenizer: tok, prompt: requests[i].prompt, stops: sampling.stop) }
        let single = prompts.count == 1
        if single { try writeStandardOutput(Data(prompts[0].utf8)) }
        let t0 = now()
        var writeError: Error? = nil
        let out = try Generator(model: engine).generate(requests) { s, token in
            let (text, stopped) = streams[s].push(token)
            if single {
                do { try writeStandardOutput(Data(text.utf8)) } catch { writeError = error; return false }   // stdout gone: stop
            }
            return !stopped
        }
        if let writeError { throw writeError }
        let dt = now() - t0
        if single {
            try writeStandardOutput(Data(streams[0].finish().utf8))
            print("")
        } else {
            for i in prompts.indices { print("--- [\(i)] \(prompts[i])\(streams[i].text)") }
        }
        let n = out.reduce(0) { $0 + $1.count }
        log(String(format: "[%d tokens in %.2f s, %.1f tokens/s]", n, dt, Double(n) / max(dt, 1e-9)))
    }
}

/// Incremental detokenisation with stop strings: text is released only when it can no longer be the
/// start of a stop string, and never splits a UTF-8 sequence.
struct TextStream {
    let tokenizer: Tokenizer
    let stops: [String]
    var ids: [Int]
    let promptBytes: Int
    var emittedBytes = 0
    var text = ""
    var stopped = false

    init(tokenizer: Tokenizer, prompt: [Int], stops: [String]) {
        self.tokenizer = tokenizer; self.stops = stops.filter { !$0.isEmpty }; ids = prompt
        promptBytes = tokenizer.decodeBytes(prompt).count
    }

    /// Returns newly releasable text and whether a stop string was reached.
    mutating func push(_ token: Int) -> (String, Bool) {
        ids.append(token)
        let all = tokenizer.decodeBytes(ids)
        let generated = Array(all[min(promptBytes, all.count)...])
        var full = String(decoding: generated, as: UTF8.self)
        // hold back an incomplete UTF-8 tail
        if full.hasSuffix("\u{FFFD}") && generated.last.map({ $0 >= 0x80 }) == true { full = String(full.dropLast()) }
        for s in stops {
            if let r = full.range(of: s) {
                stopped = true
                full = String(full[..<r.lowerBound])
            }
        }
        var releasable = full
        if !stopped {
            // keep back a suffix that could begin a stop string
            var hold = 0
            for s in stops {
                for k in stride(from: min(s.count - 1, full.count), through: 1, by: -1) where full.hasSuffix(String(s.prefix(k))) {
                    hold = max(hold, k); break
                }
            }
            releasable = String(full.dropLast(hold))
        }
        let new = releasable.count > text.count ? String(releasable.dropFirst(text.count)) : ""
        text = releasable
        return (new, stopped)
    }

    mutating func finish() -> String {
        if stopped { return "" }
        let all = tokenizer.decodeBytes(ids)
        var full = String(decoding: all[min(promptBytes, all.count)...], as: UTF8.self)
        for s in stops { if let r = full.range(of: s) { full = String(full[..<r.lowerBound]) } }
        let rest = full.count > text.count ? String(full.dropFirst(text.count)) : ""
        text = full
        return rest
    }
}
