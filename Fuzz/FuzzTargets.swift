// turing-fuzz: libFuzzer targets, one per parser of untrusted bytes, in one binary (one link on a
// shared machine); TURING_FUZZ_TARGET picks the target. Built only when TURING_FUZZ=1 (Package.swift),
// with `-sanitize=fuzzer,address` in debug (bounds and overflow checks on, @testable internals):
// see scripts/fuzz.sh. Contract of every target: any input either parses or throws; a crash, trap,
// hang, leak or ASan report is a bug. Errors are the expected outcome and ignored.

import Foundation
@testable import Checkpoints
@testable import Tasks
@testable import Tokenizers
@testable import Evaluation
import Training
import TensorCore

/// Scratch files for parsers that read paths (one folder per process).
let scratch: URL = {
    let u = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("turing-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}()

func file(_ name: String, _ data: Data) -> URL {
    let u = scratch.appendingPathComponent(name)
    try? FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
    try? data.write(to: u)
    return u
}

/// A valid tiny safetensors file for the config target (the weights are not under test there).
let hfWeights: Data? = ProcessInfo.processInfo.environment["TURING_FUZZ_HF_WEIGHTS"].flatMap { FileManager.default.contents(atPath: $0) }

/// The demo tokenizer, for the request target (TURING_FUZZ_TOKENIZER: a folder with vocab.json + merges.txt).
let demoTokenizer: GPT2Tokenizer? = ProcessInfo.processInfo.environment["TURING_FUZZ_TOKENIZER"].flatMap {
    try? GPT2Tokenizer(vocabFile: $0 + "/vocab.json", mergesFile: $0 + "/merges.txt")
}

let targets: [String: (Data) throws -> Void] = [
    "zip": { d in
        let z = try ZipArchive(data: d, path: "fuzz.zip")
        for e in z.entries { _ = try? z.payloadRange(of: e); try? z.verifyChecksum(e) }
    },
    "pickle": { d in _ = try Pickle.load(data: d, file: "fuzz.pkl") },
    "torchfile": { d in
        let tf = try TorchFile(data: d, path: "fuzz.pt")
        let root = try tf.root()
        for (_, t) in root.flattenTensors() { _ = try? t.materialize(name: "t") }
    },
    "torchdist": { d in _ = try DCPMetadata(url: file("dist/.metadata", d)) },
    "safetensors": { d in
        let st = try SafetensorsFile(url: file("model.safetensors", d))
        for n in st.names { _ = try? st.tensor(n) }
    },
    "hfconfig": { d in
        let dir = scratch.appendingPathComponent("hf")
        _ = file("hf/config.json", d)
        if let w = hfWeights, !FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) {
            _ = file("hf/model.safetensors", w)
        }
        _ = try HFAdapter.load(dir)
    },
    "megatronargs": { d in
        let lines = String(decoding: d, as: UTF8.self).split(separator: "\n").map(String.init)
        let args = MegatronArgs(nil, file: "fuzz", overrides: try MegatronArgs.parseOverrides(lines))
        try args.validate()
        _ = args.tensorParallel; _ = args.pipelineParallel; _ = args.trueVocabSize
        let shapes = MegatronArgs.Shapes(paddedVocab: 64, hidden: args.int("hidden_size"), ffnRows: nil, positions: nil,
                                         layers: args.int("num_layers") ?? 2, tp: args.tensorParallel ?? 1, hasPosition: true, hasOutput: false)
        _ = try args.config(shapes, vocabSize: args.trueVocabSize ?? 64)
    },
    "llama2c": { d in _ = try Llama2cAdapter.load(data: d, url: URL(fileURLWithPath: "fuzz.bin")) },
    "llama2ctok": { d in
        let t = try Llama2cTokenizer(data: d)
        _ = t.encode("Hello, world! ünïcödé"); _ = t.decode(Array(0..<min(t.vocabSize, 64)))
    },
    "gpt2tok": { d in
        // vocab.json and merges.txt in one input: split at the first NUL byte
        let cut = d.firstIndex(of: 0) ?? d.endIndex
        let v = file("tok/vocab.json", Data(d[..<cut])), m = file("tok/merges.txt", cut < d.endIndex ? Data(d[(cut + 1)...]) : Data())
        let t = try GPT2Tokenizer(vocabFile: v.path, mergesFile: m.path)
        _ = t.encode("Hello, world! ünïcödé <|endoftext|>"); _ = t.decode(Array(0..<min(t.vocabSize, 64)))
    },
    "tokjson": { d in
        let t = try GPT2Tokenizer(tokenizerJSONData: d)
        _ = t.encode("Hello, world! ünïcödé <|endoftext|>"); _ = t.decode(Array(0..<min(t.vocabSize, 64)))
    },
    "hftokjson": { d in   // general tokenizer.json (normalizers, pre-tokenizers, BPE/Unigram/WordPiece, templates)
        let t = try HFTokenizer(data: d, source: "fuzz.json")
        _ = t.encode("Hello, world! ünïcödé <|endoftext|>"); _ = t.decode(Array(0..<min(t.vocabSize, 64)))
    },
    "sentencepiece": { d in   // tokenizer.model (protobuf ModelProto)
        let t = try SentencePieceTokenizer(model: try SentencePieceModel(bytes: [UInt8](d), source: "fuzz.model"))
        _ = t.encode("Hello, world! ünïcödé"); _ = t.decode(Array(0..<min(t.vocabSize, 64)))
    },
    "tiktoken": { d in   // *.tiktoken rank files
        let t = try TiktokenTokenizer(rankFile: file("tok/fuzz.tiktoken", d).path)
        _ = t.encode("Hello, world! ünïcödé"); _ = t.decode(Array(0..<min(t.vocabSize, 64)))
    },
    "taskyaml": { d in _ = try TaskSpec.parse(yaml: String(decoding: d, as: UTF8.self), file: "fuzz.yaml") },
    "jsonl": { d in
        let dir = scratch.appendingPathComponent("data")
        _ = file("data/docs.jsonl", d)
        let src = DataSource(file: "docs.jsonl", format: .jsonl, labels: nil, labelField: "label", intFields: ["label"])
        _ = try DataReader.read(src, from: DataLocator(dataDir: dir.path), task: dir.appendingPathComponent("t.yaml").path)
    },
    "requests": { d in   // `turing score` input: parsed, then encoded as lm-eval encodes it
        for (_, p) in try RequestFile.pairs(d, file: "fuzz.jsonl") {
            if let t = demoTokenizer { _ = try? lmEvalEncodePair(t, p.context, p.continuation, prefix: t.eosToken ?? 0) }
        }
        _ = try? RequestFile.texts(d, file: "fuzz.jsonl")
    },
    "tracker": { d in
        // the same bytes as a Megatron tracker and as a DeepSpeed `latest`
        let dir = scratch.appendingPathComponent("ckpt")
        _ = file("ckpt/latest_checkpointed_iteration.txt", d)
        _ = file("ckpt/latest", d)
        _ = try? MegatronLegacyAdapter.iterationDir(dir)
        _ = CheckpointLoader.inspect(dir)
    },
    "idx": { d in
        _ = file("ds/corpus.idx", d)
        if !FileManager.default.fileExists(atPath: scratch.appendingPathComponent("ds/corpus.bin").path) {
            _ = file("ds/corpus.bin", Data((0..<4096).map { UInt8(truncatingIfNeeded: $0) }))
        }
        _ = try Datasets.megatronIndexed(prefix: scratch.appendingPathComponent("ds/corpus").path)
    },
]

let selected: (Data) throws -> Void = {
    let name = ProcessInfo.processInfo.environment["TURING_FUZZ_TARGET"] ?? ""
    guard let t = targets[name] else {
        FileHandle.standardError.write(Data("turing-fuzz: set TURING_FUZZ_TARGET to one of \(targets.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    do { try selected(data) } catch {}
    return 0
}

// SwiftPM links an executable's entry point as `turing_fuzz_main` (aliased to main): hand control to
// libFuzzer's driver from there (its own main is then not linked).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("turing_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc, v = argv
    return LLVMFuzzerRunDriver(&c, &v) { fuzzOne($0, $1) }
}
