// turing tokenize: UTF-8 text on stdin -> JSON array of ids on stdout; --decode does the reverse.

import ArgumentParser
import Evaluation
import Foundation
import TuringKit
import Tokenizers

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Encode stdin to token ids (or --decode ids to text).")

    @OptionGroup var tokenizerFiles: TokenizerOptions
    @Flag(help: "Read a JSON array of ids and print the text.") var decode = false

    func run() throws {
        guard let tok = try tokenizerFiles.load(besideCheckpoint: nil) else {
            throw ValidationError("give --tokenizer PATH or --vocab-file F --merge-file F")
        }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        if decode {
            guard let ids = try? JSONDecoder().decode([Int].self, from: input) else { throw CLIError("stdin: expected a JSON array of integers") }
            FileHandle.standardOutput.write(Data(tok.decodeBytes(ids)))
        } else {
            guard let text = String(data: input, encoding: .utf8) else { throw CLIError("stdin is not valid UTF-8") }
            print(String(decoding: try JSONEncoder().encode(encodePlain(tok, text)), as: UTF8.self))
        }
    }
}
