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
        } else {
            guard let text = String(data: input, encoding: .utf8) else { throw CLIError("stdin is not valid UTF-8") }
            print(String(decoding: try JSONEncoder().encode(specialTokens ? tok.encode(text, addSpecialTokens: true) : encodePlain(tok, text)), as: UTF8.self))
        }
    }
}
