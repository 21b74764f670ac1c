// turing train-check: replay a training run PyTorch recorded (scripts/fixtures_training.py) at any
// TP x PP x DP layout, in-process or under mpirun, and compare the first step's gradients, its
// gradient norm and every step's loss with PyTorch's. Prints one JSON line; exits non-zero when an
// error exceeds --tolerance (relative). scripts/test_mpi.sh runs it under mpirun.

import ArgumentParser
import Foundation
import TuringKit
import Checkpoints
import Collectives
import Model
import Training

struct TrainCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-check", abstract: "Developer: compare training with a run PyTorch recorded.", shouldDisplay: false)
    @Option(help: "The model PyTorch trained (any format Turing reads).") var model: String
    @Option(help: "The recorded run (expected.json from scripts/fixtures_training.py).") var reference: String
    @Option(help: "The recorded first-step gradients (.safetensors, canonical names).") var gradients: String
    @Option var tp = 1
    @Option var pp = 1
    @Option(help: "Data-parallel replicas (default: 1 in-process; under mpirun, processes / (tp x pp)).") var dp: Int?
    @Flag(name: .customLong("recompute-activations")) var recompute = false
    @Option var tolerance: Double = 1e-4

    func run() throws {
        let ref = try TrainingReference.load(URL(fileURLWithPath: reference))
        let ckpt = try loadAnyCheckpoint(model, vocabSize: nil)
        let canon = ParameterLayout(config: ckpt.config)
        let g = try SafetensorsFile(url: URL(fileURLWithPath: gradients))
        var grads: [String: [Float]] = [:]
        for e in canon.entries { grads[e.name] = try g.tensor(e.name).data }
        let mpi = MPIRuntime.isActive
        let grid = ParallelLayout(tp: tp, pp: pp, dp: dp ?? (mpi ? max(1, MPIRuntime.worldSize / (tp * pp)) : 1))
        let ex: TrainingExecutor = mpi ? try MPITraining(config: ckpt.config, grid: grid, recompute: recompute)
                                       : try InProcessTraining(config: ckpt.config, grid: grid, recompute: recompute)
        let state = TrainerState(params: try canon.flatten(ckpt), adam: AdamW(layout: canon, config: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)), step: 0)
        guard let r = try ref.replay(ex, from: state, reference: grads) else { return }     // MPI ranks other than 0
        let normRel = ref.grad_norms == nil ? 0 : abs(Double(r.firstNorm.got) - r.firstNorm.want) / r.firstNorm.want
        let ok = Double(r.worstGradient.relative) <= tolerance && r.worstLoss <= tolerance && normRel <= tolerance
        let out: [String: Any] = ["layout": "\(grid)\(mpi ? " over \(MPIRuntime.worldSize) MPI processes" : " in-process")",
                                  "worst_gradient_relative": Double(r.worstGradient.relative), "worst_gradient_tensor": r.worstGradient.name,
                                  "first_norm_relative": normRel, "worst_loss_relative": r.worstLoss, "steps": r.losses.count, "passed": ok]
        print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
        if !ok { throw CLIError("training differs from PyTorch by more than \(tolerance) (relative)") }
    }
}
