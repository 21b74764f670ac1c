// turing finetune: train a GPT-family model (from a checkpoint, or from scratch with --config) on
// JSONL or a Megatron indexed dataset at any TP x PP x DP layout (in-process ranks, or one rank per
// process under mpirun); print loss, learning rate, grad norm, tokens/s and ETA per step; save
// Turing checkpoints atomically every --save-interval steps (world rank 0 writes); resume exactly.

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
        // model
        let ckpt: CanonicalCheckpoint
        var resumed: CanonicalCheckpoint? = nil
        var resumeOpt: [String: Tensor]? = nil
        var startStep = 0
        var resumedFrom: String? = nil
        if let saveDir = save, let dir = TuringFormat.resolve(URL(fileURLWithPath: saveDir)) {
            let r = try TuringFormat.load(dir)
            resumed = r.checkpoint; resumeOpt = r.optimizer; startStep = (r.trainer?["step"] as? Int) ?? 0
            resumedFrom = dir.path
        } else if let meg = saveMegatron, MegatronLegacyAdapter.isMegatronFolder(URL(fileURLWithPath: meg)) {
            // a Megatron-LM save with its optimizer state (ours, or Megatron's own FP32Optimizer)
            let url = URL(fileURLWithPath: meg)
            let rep = try CheckpointLoader.loadReport(url)
            resumed = rep.checkpoint
            let flat = ParameterLayout(config: rep.checkpoint.config)
            var o = LoadOptions(); o.vocabSize = rep.checkpoint.config.vocabSize
            o.optimizerMoment = "exp_avg"; let m = try flat.flatten(CheckpointLoader.load(url, options: o))
            o.optimizerMoment = "exp_avg_sq"; let v = try flat.flatten(CheckpointLoader.load(url, options: o))
            resumeOpt = ["adam_m": Tensor(shape: [m.count], data: m), "adam_v": Tensor(shape: [v.count], data: v)]
            startStep = rep.iteration ?? 0
            resumedFrom = "\(meg) (Megatron-LM legacy, with its optimizer state)"
        }
        if let r = resumed, let from = resumedFrom {
            ckpt = r
            // the model this command names must be the one saved there
            let given: ModelConfig?
            if let c = config { given = try JSONDecoder().decode(ModelConfig.self, from: Data(contentsOf: URL(fileURLWithPath: c))) }
            else { given = CheckpointLoader.inspect(URL(fileURLWithPath: checkpoint!)).config }
            if let g = given, g.architectureKey != ckpt.config.architectureKey {
                throw CLIError("\(from) holds a checkpoint of another architecture (\(ckpt.config.architectureKey)) than \(config ?? checkpoint!) (\(g.architectureKey)): resume with the model it was trained from, or save to a new directory")
            }
            log("resuming from \(from) at step \(startStep)")
        } else if let c = config {
            let cfg = try JSONDecoder().decode(ModelConfig.self, from: Data(contentsOf: URL(fileURLWithPath: c)))
            ckpt = .random(config: cfg, seed: seed, std: 0.02)
        } else {
            ckpt = try loadAnyCheckpoint(checkpoint!, vocabSize: nil)
        }
        let tok = try findTokenizer()
        let canonical = ParameterLayout(config: ckpt.config)
        let mpi = MPIRuntime.isActive
        let (tp, pp) = (layout.tp, layout.pp)
        let replicas = dp ?? (mpi ? max(1, MPIRuntime.worldSize / (tp * pp)) : 1)
        let grid = TrainingLayout(tp: tp, pp: pp, dp: replicas)
        let executor: TrainingExecutor = mpi ? try MPITraining(config: ckpt.config, grid: grid, recompute: recompute)
                                             : try InProcessTraining(config: ckpt.config, grid: grid, recompute: recompute)
        if let t = threads.threads { Compute.setThreads(t) }
        let T = seqLength ?? ckpt.config.maxPositions
        guard T <= ckpt.config.maxPositions else { throw CLIError("--seq-length \(T) exceeds the model's \(ckpt.config.maxPositions) positions") }
        let eos = tok.eosToken ?? ckpt.config.eosToken ?? 0
        let rows: [TrainingRow]
        if data.hasSuffix(".jsonl") {
            rows = try Datasets.jsonl(data, encode: { encodePlain(tok, $0) }, eos: eos, seqLength: T)
        } else {
            let prefix = data.hasSuffix(".bin") || data.hasSuffix(".idx") ? String(data.dropLast(4)) : data
            rows = Datasets.pack(try Datasets.megatronIndexed(prefix: prefix), eos: eos, seqLength: T)
        }
        for r in rows { for t in r.tokens where t >= ckpt.config.vocabSize { throw CLIError("\(data): token id \(t) outside the model's vocabulary of \(ckpt.config.vocabSize)") } }
        let tc = TrainerConfig(microBatch: microBatch, globalBatch: globalBatch, steps: steps,
                               schedule: LRSchedule(lr: lr, minLR: minLR, warmup: warmup, decaySteps: steps, style: decay),
                               adam: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: weightDecay),
                               clipGrad: clipGrad, seed: seed, saveInterval: saveInterval)
        var tcx = tc
        tcx.exitAfter = exitInterval
        if evalTasks != nil && evalInterval <= 0 { throw CLIError("--eval-tasks needs --eval-interval K") }
        tcx.evalInterval = evalTasks == nil ? 0 : evalInterval
        let locator = taskData.locator()
        let tasks = try (evalTasks ?? "").split(separator: ",").map {
            try LoadedTask(spec: try TaskSpec.load(named: String($0).trimmingCharacters(in: .whitespaces), in: tasksDir), data: locator)
        }
        let loop = try Trainer(executor: executor, rows: rows, config: tcx)
        var adam = AdamW(layout: canonical, config: tc.adam)
        if let o = resumeOpt {
            guard let m = o["adam_m"], let v = o["adam_v"], m.count == canonical.total, v.count == canonical.total else {
                throw CLIError("\(resumedFrom ?? "the save"): the saved Adam moments do not fit this model's \(canonical.total) parameters")
            }
            adam = AdamW(layout: canonical, config: tc.adam, m: m.data, v: v.data, step: startStep)
        }
        var state = TrainerState(params: try canonical.flatten(ckpt), adam: adam, step: startStep)
        log("training \(ckpt.config.numLayers) layers x \(ckpt.config.hiddenSize) on \(rows.count) rows of \(T + 1) tokens; \(steps) steps, global batch \(globalBatch) (micro \(microBatch)); \(grid)\(mpi ? " over \(MPIRuntime.worldSize) MPI processes" : "")\(recompute ? ", recomputing activations" : "")")
        let t0 = Date()
        try loop.run(&state, onStep: { r in
            let eta = Date().timeIntervalSince(t0) / Double(r.step - startStep) * Double(steps - r.step)
            guard isPrimaryRank else { return }
            print(String(format: "step %5d | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | ETA %.0fs", r.step, r.loss, r.lr, r.gradNorm, r.tokensPerSecond, eta))
        }, save: { s in
            guard isPrimaryRank else { return }
            var c = ckpt
            c.tensors = canonical.tensors(s.params)
            if let saveDir = save {
                try TuringFormat.save(c, optimizer: ["adam_m": Tensor(shape: [s.adam.m.count], data: s.adam.m), "adam_v": Tensor(shape: [s.adam.v.count], data: s.adam.v)],
                                      trainer: ["step": s.step, "seed": Int(seed), "data": data], to: URL(fileURLWithPath: saveDir), iteration: s.step)
                log("saved \(saveDir) at step \(s.step)")
            }
            if let meg = saveMegatron {
                let training = MegatronTrainingState(
                    expAvg: canonical.tensors(s.adam.m), expAvgSq: canonical.tensors(s.adam.v), step: s.step,
                    lr: Double(lr), currentLR: Double(tc.schedule.at(s.step)), minLR: Double(minLR), beta1: Double(tc.adam.beta1), beta2: Double(tc.adam.beta2),
                    eps: Double(tc.adam.eps), weightDecay: Double(weightDecay), clipGrad: Double(clipGrad), warmupIters: warmup, decayIters: steps,
                    trainIters: steps, decayStyle: decay.rawValue, globalBatch: globalBatch, microBatch: microBatch)
                try CheckpointWriter.write(c, to: URL(fileURLWithPath: meg), target: .megatron,
                                           options: WriteOptions(tp: tp, pp: pp, iteration: s.step, training: training), replace: true)
                log("saved \(meg) (Megatron-LM legacy, iteration \(s.step), with the optimizer and scheduler state)")
            }
        }, evaluate: { s in
            guard isPrimaryRank else { return }     // the other ranks wait at the next step's first collective
            var c = ckpt
            c.tensors = canonical.tensors(s.params)
            let evaluator = try Evaluator(model: DecoderModel(weights: try DecoderWeights(c)), tokenizer: tok)
            for task in tasks {
                let r = try evaluator.evaluate(task, numFewshot: task.spec.numFewshot, limit: evalLimit)
                let ms = r.metrics.map { String(format: "%@ %.4f", $0.name, $0.value) }.joined(separator: ", ")
                print("eval step \(s.step) | \(task.spec.name) \(r.numFewshot)-shot, \(r.docs.count) docs | \(ms)")
            }

        })
    }

    func findTokenizer() throws -> Tokenizer {
        if let tok = try tokenizerFiles.load(besideCheckpoint: checkpoint) { return tok }
        throw CLIError("no tokenizer: pass --tokenizer PATH or --vocab-file F --merge-file F")
    }
}

extension ModelConfig {
    /// What must agree for a saved run to continue (the vocabulary may differ by padding).
    var architectureKey: String {
        "\(numLayers) layers, hidden \(hiddenSize), \(numHeads) heads / \(numKVHeads) groups of \(headDim), FFN \(ffnSize), \(norm), \(activation), \(positions) positions" +
            (tiedEmbeddings ? ", tied" : ", untied") + (linearBias ? ", biases" : "")
    }
}
extension DecayStyle: ExpressibleByArgument {}
