// Option groups shared by the subcommands, one per concern.

import ArgumentParser
import Foundation
import Checkpoints
import Engine
import Model
import Collectives
import Tasks
import TensorCore
import TuringKit
import Tokenizers

/// Which tokenizer: a folder or file, or Megatron's GPT-2 vocab + merges pair (default: found beside the checkpoint).
struct TokenizerOptions: ParsableArguments {
    @Option(help: "Tokenizer: a folder (tokenizer.json, tokenizer.model, *.tiktoken, vocab.json + merges.txt, tokenizer.bin) or one such file.")
    var tokenizer: String?

    @Option(name: .customLong("vocab-file"), help: "GPT-2 vocab.json (Megatron's --vocab-file).")
    var vocabFile: String?

    @Option(name: .customLong("merge-file"), help: "GPT-2 merges.txt (Megatron's --merge-file).")
    var mergeFile: String?

    func validate() throws {
        if (vocabFile == nil) != (mergeFile == nil) { throw ValidationError("--vocab-file and --merge-file go together") }
    }

    /// The tokenizer these options name, else the one found beside `checkpoint` (nil: none found).
    func load(besideCheckpoint checkpoint: String?) throws -> Tokenizer? {
        try ModelSource.findTokenizer(tokenizer: tokenizer, vocabFile: vocabFile, mergeFile: mergeFile, besideCheckpoint: checkpoint)
    }
}

/// The model a command runs: the checkpoint and its tokenizer.
struct CheckpointOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint: an HF folder, a Megatron or DeepSpeed save directory, or a llama2.c .bin file.")
    var checkpoint: String

    @OptionGroup var tokenizerFiles: TokenizerOptions

    @Option(name: .customLong("megatron-arg"), help: "A Megatron arg as key=value, over the saved args (repeatable), e.g. ffn_hidden_size=3072 for checkpoints that do not record it.")
    var megatronArg: [String] = []

    @Flag(name: .customLong("no-verify-checksums"), help: "Skip the CRC-32 check of each .pt record (docs/safety.md gives its cost).")
    var noVerifyChecksums = false

    var source: ModelSource {
        ModelSource(checkpoint: checkpoint, tokenizer: tokenizerFiles.tokenizer, vocabFile: tokenizerFiles.vocabFile,
                    mergeFile: tokenizerFiles.mergeFile, megatronArgs: megatronArg)
    }

    /// Opens the model at the layout and compute settings given (`ModelSource.open`).
    func open(_ layout: LayoutOptions, _ compute: ComputeOptions, needTokenizer: Bool = true, weightsHash: Bool = false) throws -> LoadedModel {
        applyChecksumFlag(noVerifyChecksums)
        // a load that takes more than a second shows its progress on one stderr line
        let t0 = now()
        var shown = false, last = 0.0
        LoadProgress.handler = { placed, of in
            let t = now() - t0
            guard isPrimaryRank, t > 1, t - last >= 0.5 || placed == of else { return }
            last = t; shown = true
            FileHandle.standardError.write(Data(String(format: "\r  loading: %d/%d tensors, %.0f s ", placed, of, t).utf8))
        }
        defer {
            LoadProgress.handler = nil
            if shown { FileHandle.standardError.write(Data("\n".utf8)) }
        }
        return try source.open(layout: layout.layout, microBatches: compute.microBatches, dtype: compute.dtype,
                        threads: compute.threads.threads, needTokenizer: needTokenizer, weightsHash: weightsHash)
    }
}

/// Where the ranks sit: tensor- and pipeline-parallel sizes (in-process threads; under mpirun, processes).
struct LayoutOptions: ParsableArguments {
    @Option(help: "Tensor-parallel ranks (in-process threads; under mpirun, processes).") var tp: Int = 1
    @Option(help: "Pipeline-parallel stages (in-process threads; under mpirun, processes).") var pp: Int = 1

    func validate() throws {
        guard tp >= 1 else { throw ValidationError("--tp must be at least 1, found \(tp)") }
        guard pp >= 1 else { throw ValidationError("--pp must be at least 1, found \(pp)") }
    }

    /// The engines' layout: TP x PP, one replica, vocabulary padded to a multiple of TP.
    var layout: ParallelLayout { ParallelLayout(tp: tp, pp: pp) }
}

/// Kernel threads: shared by every command that computes.
struct ThreadsOptions: ParsableArguments {
    @Option(help: "Kernel threads (default: all cores).") var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, found \(t)") }
    }
}

/// How the engine computes: weights' dtype, threads, pipeline micro-batches.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Weights in memory: float32, or bfloat16 (narrowed once at load; f32 activations and accumulation).")
    var dtype: ComputeDType = .float32

    @OptionGroup var threads: ThreadsOptions

    @Option(name: .customLong("micro-batches"), help: "Micro-batches per pipelined forward (default: PP).") var microBatches: Int?

    func validate() throws {
        if let m = microBatches, m < 1 { throw ValidationError("--micro-batches must be at least 1, found \(m)") }
    }
}

extension ComputeDType: ExpressibleByArgument {}

/// `--no-verify-checksums`: the zip CRC-32 check is process-wide.
func applyChecksumFlag(_ skip: Bool) { if skip { ZipArchive.verifyChecksums = false } }

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

struct SamplingOptions: ParsableArguments {
    @Option(name: .customLong("max-tokens"), help: "Tokens to generate per prompt.")
    var maxTokens: Int = 128
    @Option(help: "Temperature; 0 is greedy.")
    var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0: off).")
    var topK: Int = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1: off).")
    var topP: Float = 1
    @Option(help: "Sampling seed.")
    var seed: UInt64 = 1234
    @Option(help: "Stop when this text appears (repeatable).")
    var stop: [String] = []

    var params: SamplingParams { SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed) }

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be >= 0, found \(maxTokens)") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be >= 0, found \(temperature)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be >= 0, found \(topK)") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], found \(topP)") }
    }
}


struct StandardError: TextOutputStream {
    mutating func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
var stderrStream = StandardError()
/// Logs and progress go to stderr, from the primary rank only.
func log(_ s: String) { if isPrimaryRank { print(s, to: &stderrStream) } }

/// True on the process that prints results and writes files: world rank 0 under mpirun (MPI is
/// initialised on first use, only when launched by mpirun), always true otherwise.
let isPrimaryRank: Bool = {
    guard MPIRuntime.launchedByMPIRun else { return true }
    do { try MPIRuntime.initialize() } catch { MPIRuntime.abort("\(error)") }
    return MPIRuntime.worldRank == 0
}()

/// Where task data comes from (eval, finetune --eval-tasks): see Tasks.DataLocator for the order.
struct TaskDataOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Where task data files are looked up first (default: $TURING_SHARED_DATA, else ../shared/data).")
    var dataDir: String?
    @Option(name: .customLong("data-cache"), help: "Downloaded task data, <dir>/<sha256>/<file> (default: $TURING_DATA_CACHE, else $XDG_CACHE_HOME/turing/data, else ~/.cache/turing/data).")
    var dataCache: String?
    @Flag(help: "Never download task data (the download cache is still read).")
    var offline = false

    var resolvedDataDir: String { dataDir ?? ProcessInfo.processInfo.environment["TURING_SHARED_DATA"] ?? "../shared/data" }

    var resolvedCache: String {
        let env = ProcessInfo.processInfo.environment
        if let d = dataCache ?? env["TURING_DATA_CACHE"] { return d }
        let base = env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return ((base as NSString).appendingPathComponent("turing") as NSString).appendingPathComponent("data")
    }

    func locator() -> DataLocator {
        let dl = Downloader(cacheDir: URL(fileURLWithPath: resolvedCache), progress: downloadProgress)
        return DataLocator(dataDir: resolvedDataDir, downloads: dl, offline: offline)
    }
}

/// One stderr line per download, rewritten in place: bytes, MB/s, ETA (as `progress` does for documents).
@Sendable func downloadProgress(_ p: DownloadProgress) {
    guard isPrimaryRank else { return }
    let mb = { (b: Int64) in String(format: "%.1f", Double(b) / 1e6) }
    let speed = Double(p.received - p.resumedFrom) / max(p.seconds, 1e-9)
    let size = p.total.map { "\(mb(p.received))/\(mb($0)) MB" } ?? "\(mb(p.received)) MB"
    let eta = p.total.map { speed > 0 ? String(format: "  ETA %.0fs", Double($0 - p.received) / speed) : "" } ?? ""
    let resumed = p.resumedFrom > 0 ? " (resumed at \(mb(p.resumedFrom)) MB)" : ""
    let name = URL(string: p.url)?.lastPathComponent ?? p.url
    FileHandle.standardError.write(Data(String(format: "\r  download %@%@: %@  %.2f MB/s%@ ", name, resumed, size, speed / 1e6, eta).utf8))
    if p.finished { FileHandle.standardError.write(Data("\n".utf8)) }
}
