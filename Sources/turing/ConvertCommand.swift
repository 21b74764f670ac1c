// turing convert: read a checkpoint in any supported format (or a seeded random model: GPT-2-124M-shaped,
// made whole; or Llama-2-7B-shaped, made a tensor at a time while written, `RandomTensorSource`) and
// write it as a Megatron-LM legacy save, a Megatron-DeepSpeed pipeline save or an HF folder, at the
// TP x PP asked for. Refuses to overwrite a non-empty output without --force; the
// output appears atomically (built beside it, then renamed). Prints load/write seconds and peak RSS
// to stderr (with --force the old output is replaced only once the new one is complete); exits non-zero with the error on failure.

import ArgumentParser
import Foundation
import Checkpoints
import Model
import TensorCore

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert",
        abstract: "Convert a checkpoint to Megatron-LM, Megatron-DeepSpeed or HF files at a new TP x PP.")

    @Argument(help: "Source checkpoint (HF folder, Megatron, DeepSpeed or torch_dist save directory, a Turing save directory, llama2.c .bin).") var path: String?
    @Option(help: "Target format: megatron, deepspeed or hf.") var to: String = ""
    @Option(help: "Tensor-parallel size of the output.") var tp: Int = 1
    @Option(help: "Pipeline-parallel size of the output.") var pp: Int = 1
    @Option(help: "Output directory (must not exist or be empty, unless --force).") var output: String?
    @Option(name: .customLong("vocab-size"), help: "Real vocabulary size, for checkpoints that do not record it.") var vocabSize: Int?
    @Option(name: .customLong("megatron-arg"), help: "A Megatron arg as key=value, over the saved args (repeatable).") var megatronArg: [String] = []
    @Option(help: "Stored dtype: float32, bfloat16 or float16 (default: the source's, float32 if it is not one of these).") var dtype: String?
    @Option(help: "Iteration to record (default: a 'release' checkpoint).") var iteration: Int?
    @Option(help: "Instead of PATH, write a seeded random model: gpt2-124m, or llama2-7b (made a tensor at a time while written).") var random: String?
    @Option(help: "Seed of --random.") var seed: UInt64 = 1234
    @Flag(help: "Replace a non-empty output directory.") var force = false
    @Flag(name: .customLong("no-verify-checksums"), help: "Skip the CRC-32 check of each .pt record.") var noVerifyChecksums = false
    @Flag(name: .customLong("load-only"), help: "Load the source, report time and peak RSS, write nothing (benchmarks).") var loadOnly = false

    func validate() throws {
        guard loadOnly || ConvertTarget(rawValue: to) != nil else { throw ValidationError("--to must be megatron, deepspeed or hf, found '\(to)'") }
        guard tp >= 1, pp >= 1 else { throw ValidationError("--tp and --pp must be >= 1, found \(tp) and \(pp)") }
        if let v = vocabSize, v < 1 { throw ValidationError("--vocab-size must be >= 1, found \(v)") }
        if let d = dtype, !["float32", "bfloat16", "float16"].contains(d) { throw ValidationError("--dtype must be float32, bfloat16 or float16, found '\(d)'") }
        if (path == nil) == (random == nil) { throw ValidationError("give either a source PATH or --random gpt2-124m|llama2-7b") }
        if output == nil && !loadOnly { throw ValidationError("--output is required (or --load-only)") }
        if let r = random, !["gpt2-124m", "llama2-7b"].contains(r) { throw ValidationError("--random supports gpt2-124m and llama2-7b, found '\(r)'") }
        if random == "llama2-7b" && loadOnly { throw ValidationError("--random llama2-7b is made while written: --load-only has nothing to load") }
    }

    func run() throws {
        applyChecksumFlag(noVerifyChecksums)
        let out = URL(fileURLWithPath: output ?? "/dev/null")
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if !loadOnly, fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw CLIError("--output \(out.path) exists and is not a directory") }
            let items = (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
            if !items.isEmpty && !force {
                throw CLIError("--output \(out.path) exists and is not empty (\(items.count) entries); pass --force to replace it")
            }
        }
        let t0 = Date()
        if random == "llama2-7b" {   // never held whole: each tensor made from (seed, name) as its file is written
            let src = RandomTensorSource(config: .llama2_7b, seed: seed)
            let stored = dtype.flatMap(StorageDType.init(rawValue:)) ?? .bfloat16
            try CheckpointWriter.write(source: src, to: out, target: ConvertTarget(rawValue: to)!,
                                       options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault), dtype: stored, iteration: iteration), replace: force)
            var ru = rusage(); getrusage(0, &ru)   // RUSAGE_SELF
            let params = CanonicalSchema.shapes(for: src.config).reduce(0) { $0 + $1.1.reduce(1, *) }
            log(String(format: "convert: random llama2-7b (seed %llu) -> %@ (%@, TP %d x PP %d, %@): %ld parameters; write %.3f s, peak RSS %.1f MB",
                       seed, out.path, to, tp, pp, stored.rawValue, params, Date().timeIntervalSince(t0), Double(ru.ru_maxrss) / 1024))
            return
        }
        if loadOnly && (tp > 1 || pp > 1), random == nil {   // load + re-split, the issue-3 benchmark
            let src = URL(fileURLWithPath: path!)
            let layout = ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault)
            let r = try CheckpointLoader.loadSplit(src, layout: layout, options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArg)))
            let t1 = Date()
            var ru = rusage(); getrusage(0, &ru)   // RUSAGE_SELF
            for p in r.problems { log("convert: warning: \(p)") }
            // PP stages hold consecutive layer ranges of these tensors (RankPlace); nothing to copy for PP.
            let stages = try layout.stageLayers(numLayers: r.checkpoint.config.numLayers)
            let params = r.shards!.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
            log(String(format: "convert: loaded %@ and split to TP %d x PP %d (layers %@) in %.3f s: %d parameters in the shards, peak RSS %.1f MB",
                       path!, tp, pp, stages.map { "\($0.lowerBound)..<\($0.upperBound)" }.joined(separator: ", "),
                       t1.timeIntervalSince(t0), params, Double(ru.ru_maxrss) / 1024))
            return
        }
        let ck: CanonicalCheckpoint
        if random != nil {
            ck = .random(config: .gpt2Small, seed: seed)
        } else {
            let src = URL(fileURLWithPath: path!)
            guard fm.fileExists(atPath: src.path, isDirectory: &isDir) else { throw CLIError("source not found: \(src.path)") }
            if isDir.boolValue, TuringFormat.resolve(src) != nil {   // a `finetune --save` directory
                ck = try TuringFormat.load(src).checkpoint
            } else if isDir.boolValue {
                let r = try CheckpointLoader.loadReport(src, options: LoadOptions(vocabSize: vocabSize, argOverrides: try MegatronArgs.parseOverrides(megatronArg)))
                for p in r.problems { log("convert: warning: \(p)") }
                ck = r.checkpoint
            } else { ck = try Llama2cAdapter.load(src) }
        }
        let t1 = Date()
        var ruLoad = rusage(); getrusage(0, &ruLoad)   // RUSAGE_SELF
        if loadOnly {
            log(String(format: "convert: loaded %@ in %.3f s: %d parameters, peak RSS %.1f MB", path ?? "random", t1.timeIntervalSince(t0),
                       ck.tensors.values.reduce(0) { $0 + $1.count }, Double(ruLoad.ru_maxrss) / 1024))
            return
        }
        let stored: StorageDType = dtype.flatMap(StorageDType.init(rawValue:)) ??
            ([.float32, .bfloat16, .float16].contains(ck.sourceDType) ? ck.sourceDType : .float32)
        try CheckpointWriter.write(ck, to: out, target: ConvertTarget(rawValue: to)!,
                                   options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault), dtype: stored, iteration: iteration), replace: force)
        let t2 = Date()
        var ru = rusage(); getrusage(0, &ru)   // RUSAGE_SELF
        let params = ck.tensors.values.reduce(0) { $0 + $1.count }
        log(String(format: "convert: %@ -> %@ (%@, TP %d x PP %d, %@): %d parameters; load %.3f s (peak RSS %.1f MB), write %.3f s, peak RSS %.1f MB",
                   random.map { "random " + $0 } ?? path!, out.path, to, tp, pp, stored.rawValue, params,
                   t1.timeIntervalSince(t0), Double(ruLoad.ru_maxrss) / 1024, t2.timeIntervalSince(t1), Double(ru.ru_maxrss) / 1024))
    }
}
