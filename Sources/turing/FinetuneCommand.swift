// turing finetune: the command line of `TuringKit.FinetuneJob` (train from a checkpoint, or from scratch
// with --config, at any TP x PP x DP layout; resume exactly); prints loss, learning rate, grad norm,
// tokens/s and ETA per step, and each evaluation's metrics.

import ArgumentParser
import Foundation
import TuringKit
import Engine
import Collectives
import Tasks
import Evaluation
import Checkpoints
import Model
import TensorCore
import Tokenizers
import Training

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "finetune", abstract: "Fine-tune (or train from scratch) on JSONL or a Megatron indexed dataset.")

    @Option(help: "Starting checkpoint (any format Turing reads).") var checkpoint: String?
    @Option(help: "Train from scratch: a ModelConfig JSON file (random init, --seed).") var config: String?
    @OptionGroup var tokenizerFiles: TokenizerOptions
    @Option(help: "Training data: a .jsonl file, or a Megatron indexed dataset (.bin/.idx path or prefix).") var data: String
    @Option(name: .customLong("seq-length"), help: "Tokens per training row (default: the model's positions).") var seqLength: Int?
    @Option(name: .customLong("micro-batch")) var microBatch: Int = 4
    @Option(name: .customLong("global-batch")) var globalBatch: Int = 8
    @Option var lr: Float = 3e-4
    @Option(name: .customLong("min-lr")) var minLR: Float = 0
    @Option var warmup: Int = 0
    @Option(help: "Learning-rate decay after warmup: \(DecayStyle.allCases.map(\.rawValue).joined(separator: ", ")).") var decay: DecayStyle = .cosine
    @Option(name: .customLong("weight-decay")) var weightDecay: Float = 0.1
    @Option(name: .customLong("clip-grad")) var clipGrad: Float = 1.0
    @Option var steps: Int
    @Option(help: "Directory for checkpoints.") var save: String?
    @Option(name: .customLong("save-interval")) var saveInterval: Int = 0
    @Option(name: .customLong("save-megatron"), help: "Also (or instead of --save) write each save as a Megatron-LM legacy checkpoint at the run's --tp x --pp (model, AdamW state, LR scheduler, args, iteration) here; Megatron resumes it with --no-load-rng, and so does finetune when --save holds nothing.") var saveMegatron: String?
    @Option(name: .customLong("exit-interval"), help: "Stop (and save) after this step; resume later with the same flags.") var exitInterval: Int?
    @Option var seed: UInt64 = 1234
    @Option(name: .customLong("eval-tasks"), help: "Evaluate these tasks (comma-separated, as `turing eval`) every --eval-interval steps.") var evalTasks: String?
    @Option(name: .customLong("eval-interval")) var evalInterval: Int = 0
    @Option(name: .customLong("eval-limit"), help: "Documents per task in those evaluations.") var evalLimit: Int = 100
    @Option(name: .customLong("tasks-dir")) var tasksDir: String = "tasks"
    @OptionGroup var taskData: TaskDataOptions
    @OptionGroup var layout: LayoutOptions
    @Option(help: "Data-parallel replicas (default: 1 in-process; under mpirun, processes / (tp x pp)).") var dp: Int?
    @Flag(name: .customLong("recompute-activations"), help: "Keep only each stage's input per micro-batch and recompute the rest in backward (less memory, one more forward).") var recompute = false
    @OptionGroup var threads: ThreadsOptions

    func validate() throws {
        guard (checkpoint == nil) != (config == nil) else { throw ValidationError("give exactly one of --checkpoint and --config") }
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        if let d = dp, d < 1 { throw ValidationError("--dp must be at least 1, found \(d)") }
    }

    func run() throws {
        var job = FinetuneJob(checkpoint: checkpoint, config: config, data: data, steps: steps)
        (job.tokenizer, job.vocabFile, job.mergeFile) = (tokenizerFiles.tokenizer, tokenizerFiles.vocabFile, tokenizerFiles.mergeFile)
        (job.seqLength, job.microBatch, job.globalBatch) = (seqLength, microBatch, globalBatch)
        (job.lr, job.minLR, job.warmup, job.decay, job.weightDecay, job.clipGrad) = (lr, minLR, warmup, decay, weightDecay, clipGrad)
        (job.save, job.saveInterval, job.saveMegatron, job.exitInterval, job.seed) = (save, saveInterval, saveMegatron, exitInterval, seed)
        (job.layout, job.replicasFromProcesses) = (ParallelLayout(tp: layout.tp, pp: layout.pp, dp: dp ?? 1), dp == nil)
        (job.recompute, job.threads) = (recompute, threads.threads)
        let locator = taskData.locator()
        job.evalTasks = try (evalTasks ?? "").split(separator: ",").map {
            try LoadedTask(spec: try TaskSpec.load(named: String($0).trimmingCharacters(in: .whitespaces), in: tasksDir), data: locator)
        }
        if evalTasks != nil && evalInterval <= 0 { throw ValidationError("--eval-tasks needs --eval-interval K") }
        (job.evalInterval, job.evalLimit) = (evalInterval, evalLimit)
        try job.run(log: { log($0) }, onStep: { r, eta in
            print(String(format: "step %5d | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | ETA %.0fs", r.step, r.loss, r.lr, r.gradNorm, r.tokensPerSecond, eta))
        }, onEval: { step, task, r in
            let ms = r.metrics.map { String(format: "%@ %.4f", $0.name, $0.value) }.joined(separator: ", ")
            print("eval step \(step) | \(task.spec.name) \(r.numFewshot)-shot, \(r.docs.count) docs | \(ms)")
        })
    }
}

extension DecayStyle: ExpressibleByArgument {}
