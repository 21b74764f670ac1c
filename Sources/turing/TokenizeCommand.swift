// turing tokenize: UTF-8 text on stdin -> JSON array of ids on stdout; --decode does the reverse.

import ArgumentParser
import Evaluation
import Foundation
import TuringKit
import Tokenizers
import TensorCore

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Encode stdin to token ids (or --decode ids to text).")

    @OptionGroup var tokenizerFiles: TokenizerOptions
    @Flag(help: "Read a JSON array of ids and print the text.") var decode = false
    @Flag(help: "Benchmark: encode stdin whole (one warm-up, best of --repeats) and by line; print MB/s as JSON.") var bench = false
    @Option(help: "Timed runs for --bench.") var repeats = 5
    @Flag(name: .customLong("special-tokens"), help: "Add the tokenizer's own special tokens (BOS etc., as transformers' encode does by default).") var specialTokens = false

    func run() throws {
        guard let tok = try tokenizerFiles.load(besideCheckpoint: nil) else {
            throw ValidationError("give --tokenizer PATH or --vocab-file F --merge-file F")
        }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        if decode {
            guard let ids = try? JSONDecoder().decode([Int].self, from: input) else { throw CLIError("stdin: expected a JSON array of integers") }
            if let i = ids.firstIndex(where: { $0 < 0 || $0 >= tok.vocabSize }) {
                throw CLIError("stdin: id \(ids[i]) at position \(i) is outside the tokenizer's vocabulary (0..<\(tok.vocabSize))")
            }
            try writeStandardOutput(Data(tok.decodeBytes(ids)))
        } else if bench {
            guard let text = String(data: input, encoding: .utf8) else { throw CLIError("stdin is not valid UTF-8") }
            let whole = TokenizerBenchmark.run(tokenizer: tok, text: text, repeats: repeats)
            let lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            var best = Double.infinity
            for _ in 0...repeats {   // the first pass warms the caches, as in TokenizerBenchmark
                let t0 = DispatchTime.now().uptimeNanoseconds
                for l in lines { _ = tok.encode(l, addSpecialTokens: false) }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            let mb = Double(text.utf8.count) / 1e6
            print("{\"bytes\": \(text.utf8.count), \"tokens\": \(whole.tokens), \"whole_mb_s\": \(whole.mbPerSecond), \"lines_mb_s\": \(mb / best)}")
        } else {
            guard let text = String(data: input, encoding: .utf8) else { throw CLIError("stdin is not valid UTF-8") }
            print(String(decoding: try JSONEncoder().encode(specialTokens ? tok.encode(text, addSpecialTokens: true) : encodePlain(tok, text)), as: UTF8.self))
        }
    }
}
