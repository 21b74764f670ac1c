// MegatronTrainingState: what a Megatron-LM legacy save holds besides the model when it comes from
// training: `optimizer` (Megatron's FP32Optimizer around torch.optim.AdamW / apex FusedAdam: the
// torch `Optimizer.state_dict()` of the rank's parameters) and `opt_param_scheduler`
// (OptimizerParamScheduler.state_dict()), plus the training arguments.
//
// Parameter order and groups follow Megatron's `_get_param_groups`: the rank's parameters in
// named_parameters() order (the order of the `model` dict's leaves), grouped by weight decay (no
// decay for biases and 1-D tensors) in first-appearance order; the state is keyed by the index of
// each parameter in the concatenation of the groups. The moments are cut, fused (QKV, SwiGLU) and
// padded exactly like the weights they belong to. Megatron's scheduler counts samples: its steps
// are iterations x global batch.

import TensorCore
import Model

public struct MegatronTrainingState: Sendable {
    /// Adam's first and second moments under canonical names, shaped like the weights.
    public var expAvg: [String: Tensor], expAvgSq: [String: Tensor]
    public var step: Int
    public var lr: Double, currentLR: Double, minLR: Double
    public var beta1: Double, beta2: Double, eps: Double, weightDecay: Double, clipGrad: Double
    public var warmupIters: Int, decayIters: Int, trainIters: Int
    public var decayStyle: String          // Megatron's names: cosine, linear, constant
    public var globalBatch: Int, microBatch: Int

    public init(expAvg: [String: Tensor], expAvgSq: [String: Tensor], step: Int, lr: Double, currentLR: Double, minLR: Double,
                beta1: Double, beta2: Double, eps: Double, weightDecay: Double, clipGrad: Double,
                warmupIters: Int, decayIters: Int, trainIters: Int, decayStyle: String, globalBatch: Int, microBatch: Int) {
        self.expAvg = expAvg; self.expAvgSq = expAvgSq; self.step = step; self.lr = lr; self.currentLR = currentLR; self.minLR = minLR
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay; self.clipGrad = clipGrad
        self.warmupIters = warmupIters; self.decayIters = decayIters; self.trainIters = trainIters; self.decayStyle = decayStyle
        self.globalBatch = globalBatch; self.microBatch = microBatch
    }

    /// torch `Optimizer.state_dict()` for one rank: `params`, `expAvg`, `expAvgSq` are the same
    /// leaves (names, shapes) in named_parameters() order.
    func optimizerStateDict(params: [(String, TensorPayload)], expAvg: [(String, TensorPayload)], expAvgSq: [(String, TensorPayload)]) -> TorchValue {
        precondition(params.count == expAvg.count && params.count == expAvgSq.count)
        // groups by weight-decay multiplier, in first-appearance order
        var groups: [(wdMult: Double, members: [Int])] = []
        for (i, (name, t)) in params.enumerated() {
            let wd: Double = name.hasSuffix(".bias") || t.shape.count == 1 ? 0 : 1
            if let g = groups.firstIndex(where: { $0.wdMult == wd }) { groups[g].members.append(i) } else { groups.append((wd, [i])) }
        }
        var state: [(Int, TorchValue)] = []
        var groupDicts: [TorchValue] = []
        var next = 0
        for g in groups {
            var ids: [TorchValue] = []
            for i in g.members {
                state.append((next, .dict([("step", .tensor(TensorPayload(Tensor(shape: [], data: [Float(step)])))),
                                           ("exp_avg", .tensor(expAvg[i].1)), ("exp_avg_sq", .tensor(expAvgSq[i].1))])))
                ids.append(.int(next)); next += 1
            }
            groupDicts.append(.dict([
                ("lr", .float(currentLR)), ("betas", .tuple([.float(beta1), .float(beta2)])), ("eps", .float(eps)),
                ("weight_decay", .float(weightDecay * g.wdMult)), ("amsgrad", .bool(false)), ("foreach", .none), ("maximize", .bool(false)),
                ("capturable", .bool(false)), ("differentiable", .bool(false)), ("fused", .none), ("decoupled_weight_decay", .bool(true)),
                ("bias_correction", .bool(true)), ("step", .int(step)),       // apex / TE FusedAdam keep these in the group
                ("wd_mult", .float(g.wdMult)), ("lr_mult", .float(1.0)), ("is_expert_parallel", .bool(false)), ("is_decoupled_lr", .bool(false)),
                ("params", .list(ids)),
            ]))
        }
        return .dict([("state", .intDict(state)), ("param_groups", .list(groupDicts))])
    }

    var schedulerStateDict: TorchValue {
        .dict([("max_lr", .float(lr)), ("lr_warmup_steps", .int(warmupIters * globalBatch)), ("num_steps", .int(step * globalBatch)),
               ("lr_decay_style", .string(decayStyle)), ("lr_decay_steps", .int(decayIters * globalBatch)), ("min_lr", .float(minLR)),
               ("start_wd", .float(weightDecay)), ("end_wd", .float(weightDecay)), ("wd_incr_style", .string("constant")),
               ("wd_incr_steps", .int(trainIters * globalBatch))])
    }

    var args: [(String, TorchValue)] {
        [("optimizer", .string("adam")), ("lr", .float(lr)), ("min_lr", .float(minLR)), ("lr_decay_style", .string(decayStyle)),
         ("lr_warmup_iters", .int(warmupIters)), ("lr_decay_iters", .int(decayIters)), ("train_iters", .int(trainIters)),
         ("global_batch_size", .int(globalBatch)), ("micro_batch_size", .int(microBatch)), ("weight_decay", .float(weightDecay)),
         ("start_weight_decay", .float(weightDecay)), ("end_weight_decay", .float(weightDecay)), ("weight_decay_incr_style", .string("constant")),
         ("adam_beta1", .float(beta1)), ("adam_beta2", .float(beta2)), ("adam_eps", .float(eps)), ("clip_grad", .float(clipGrad))]
    }
}
