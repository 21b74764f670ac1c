// turing generate: text from one or more prompts, streamed to stdout as tokens are made.

import ArgumentParser
import Evaluation
import Foundation
import TuringKit
import Engine
import Model
import Serving
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
        var tFirst: Double? = nil   // the first token: the prompts' prefill is done
        let out = try Generator(model: engine).generate(requests) { s, token in
            if tFirst == nil { tFirst = now() }
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
        let promptTokens = requests.reduce(0) { $0 + $1.prompt.count }
        var line = String(format: "[%d tokens in %.2f s, %.1f tokens/s", n, dt, Double(n) / max(dt, 1e-9))
        if let tFirst, n > prompts.count {   // the rest, after each prompt's first token
            line += String(format: "; prefill %d tokens + first token %.2f s, then decode %.2f tokens/s",
                           promptTokens, tFirst - t0, Double(n - prompts.count) / max(t0 + dt - tFirst, 1e-9))
        }
        log(line + "]")
    }
}
