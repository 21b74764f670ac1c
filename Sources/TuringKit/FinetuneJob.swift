// FinetuneJob: "run this fine-tuning job" as one library call, which `turing finetune` is a thin layer over.
// Trains a GPT-family model (from a checkpoint, or from scratch from a config) on JSONL or a Megatron indexed
// dataset at any TP x PP x DP layout (in-process ranks, or one rank per process under mpirun); resumes
// exactly from `save` (a Turing save) or `saveMegatron` (a Megatron-LM save with its optimizer state);
// saves atomically every `saveInterval` steps (world rank 0 writes); reports each step and evaluation to
// the caller.

import Foundation
import Checkpoints
import Collectives
import Evaluation
import Model
import Tasks
import TensorCore
import Tokenizers
import Training

public struct FinetuneError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public struct FinetuneJob {
    /// Exactly one: a checkpoint (any format Turing reads) or a ModelConfig JSON file (random init, `seed`).
    public var checkpoint: String?
    public var config: String?
    /// The tokenizer: a path, or GPT-2 vocab + merges; default: found beside the checkpoint.
    public var tokenizer: String?, vocabFile: String?, mergeFile: String?
    /// A .jsonl file, or a Megatron indexed dataset (.bin/.idx path or prefix).
    public var data: String
    /// Tokens per training row (default: the model's positions).
    public var seqLength: Int?
    public var microBatch = 4, globalBatch = 8
    public var lr: Float = 3e-4, minLR: Float = 0, warmup = 0
    public var decay: DecayStyle = .cosine
    public var weightDecay: Float = 0.1, clipGrad: Float = 1.0
    public var steps: Int
    public var save: String?, saveInterval = 0, saveMegatron: String?
    /// Stop (and save) after this step.
    public var exitInterval: Int?
    public var seed: UInt64 = 1234
    /// Evaluated every `evalInterval` steps on `evalLimit` documents each.
    public var evalTasks: [LoadedTask] = [], evalInterval = 0, evalLimit = 100
    /// The ranks the job trains on (vocabulary padded to a multiple of TP); Megatron saves are written at
    /// its TP x PP with Megatron's padding.
    public var layout = ParallelLayout()
    /// Under mpirun, take the data-parallel replicas from the process count (processes / (TP x PP))
    /// instead of `layout.dp`.
    public var replicasFromProcesses = false
    public var recompute = false
    public var threads: Int?

    public init(checkpoint: String? = nil, config: String? = nil, data: String, steps: Int) {
        self.checkpoint = checkpoint; self.config = config; self.data = data; self.steps = steps
    }

    /// True on the process that writes files and reports: world rank 0 under mpirun, always otherwise.
    static var isPrimary: Bool { !MPIRuntime.isActive || MPIRuntime.worldRank == 0 }

    /// Runs the job. `log` gets progress lines, `onStep` each step's report and the ETA in seconds, `onEval`
    /// each evaluation's result (the last two on the primary rank only).
    public func run(log: (String) -> Void, onStep: (StepReport, Double) -> Void,
                    onEval: (Int, LoadedTask, TaskResult) -> Void) throws {
        guard (checkpoint == nil) != (config == nil) else { throw FinetuneError("give exactly one of a checkpoint and a config") }
        keepFreedMemory()    // steps reuse their activation buffers instead of faulting fresh pages in
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
                throw FinetuneError("\(from) holds a checkpoint of another architecture (\(ckpt.config.architectureKey)) than \(config ?? checkpoint!) (\(g.architectureKey)): resume with the model it was trained from, or save to a new directory")
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
        var grid = layout
        if mpi && replicasFromProcesses { grid.dp = max(1, MPIRuntime.worldSize / (grid.tp * grid.pp)) }
        let executor: TrainingExecutor = mpi ? try MPITraining(config: ckpt.config, grid: grid, recompute: recompute)
                                             : try InProcessTraining(config: ckpt.config, grid: grid, recompute: recompute)
        if let t = threads { Compute.setThreads(t) }
        let T = seqLength ?? ckpt.config.maxPositions
        guard T <= ckpt.config.maxPositions else { throw FinetuneError("--seq-length \(T) exceeds the model's \(ckpt.config.maxPositions) positions") }
        let eos = tok.eosToken ?? ckpt.config.eosToken ?? 0
        let rows: [TrainingRow]
        if data.hasSuffix(".jsonl") {
            rows = try Datasets.jsonl(data, encode: { encodePlain(tok, $0) }, eos: eos, seqLength: T)
        } else {
            let prefix = data.hasSuffix(".bin") || data.hasSuffix(".idx") ? String(data.dropLast(4)) : data
            rows = Datasets.pack(try Datasets.megatronIndexed(prefix: prefix), eos: eos, seqLength: T)
        }
        for r in rows { for t in r.tokens where t >= ckpt.config.vocabSize { throw FinetuneError("\(data): token id \(t) outside the model's vocabulary of \(ckpt.config.vocabSize)") } }
        let tc = TrainerConfig(microBatch: microBatch, globalBatch: globalBatch, steps: steps,
                               schedule: LRSchedule(lr: lr, minLR: minLR, warmup: warmup, decaySteps: steps, style: decay),
                               adam: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: weightDecay),
                               clipGrad: clipGrad, seed: seed, saveInterval: saveInterval)
        var tcx = tc
        tcx.exitAfter = exitInterval
        if !evalTasks.isEmpty && evalInterval <= 0 { throw FinetuneError("evaluation tasks need an evaluation interval (--eval-interval K)") }
        tcx.evalInterval = evalTasks.isEmpty ? 0 : evalInterval
        let loop = try Trainer(executor: executor, rows: rows, config: tcx)
        var adam = AdamW(layout: canonical, config: tc.adam)
        if let o = resumeOpt {
            guard let m = o["adam_m"], let v = o["adam_v"], m.count == canonical.total, v.count == canonical.total else {
                throw FinetuneError("\(resumedFrom ?? "the save"): the saved Adam moments do not fit this model's \(canonical.total) parameters")
            }
            adam = AdamW(layout: canonical, config: tc.adam, m: m.data, v: v.data, step: startStep)
        }
        var state = TrainerState(params: try canonical.flatten(ckpt), adam: adam, step: startStep)
        log("training \(ckpt.config.numLayers) layers x \(ckpt.config.hiddenSize) on \(rows.count) rows of \(T + 1) tokens; \(steps) steps, global batch \(globalBatch) (micro \(microBatch)); \(grid)\(mpi ? " over \(MPIRuntime.worldSize) MPI processes" : "")\(recompute ? ", recomputing activations" : "")")
        let t0 = Date()
        try loop.run(&state, onStep: { r in
            let eta = Date().timeIntervalSince(t0) / Double(r.step - startStep) * Double(steps - r.step)
            if Self.isPrimary { onStep(r, eta) }
        }, save: { s in
            guard Self.isPrimary else { return }
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
                                           options: WriteOptions(layout: ParallelLayout(tp: grid.tp, pp: grid.pp, vocab: .megatronDefault), iteration: s.step, training: training), replace: true)
                log("saved \(meg) (Megatron-LM legacy, iteration \(s.step), with the optimizer and scheduler state)")
            }
        }, evaluate: { s in
            guard Self.isPrimary else { return }     // the other ranks wait at the next step's first collective
            var c = ckpt
            c.tensors = canonical.tensors(s.params)
            let evaluator = try Evaluator(model: DecoderModel(weights: try DecoderWeights(c)), tokenizer: tok)
            for task in evalTasks {
                let r = try evaluator.evaluate(task, numFewshot: task.spec.numFewshot, limit: evalLimit)
                onEval(s.step, task, r)
            }

        })
        }

    func findTokenizer() throws -> Tokenizer {
        if let tok = try ModelSource.findTokenizer(tokenizer: tokenizer, vocabFile: vocabFile, mergeFile: mergeFile, besideCheckpoint: checkpoint) {
            return tok
        }
        throw FinetuneError("no tokenizer: pass --tokenizer PATH or --vocab-file F --merge-file F")
    }
}

extension ModelConfig {
    /// What must agree for a saved run to continue (the vocabulary may differ by padding).
    var architectureKey: String {
        "\(numLayers) layers, hidden \(hiddenSize), \(numHeads) heads / \(numKVHeads) groups of \(headDim), FFN \(ffnSize), \(norm), \(activation), \(positions) positions" +
            (tiedEmbeddings ? ", tied" : ", untied") + (linearBias ? ", biases" : "")
    }
}
