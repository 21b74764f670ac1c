// turing make-demo: rebuild the built-in demo model from nothing: generate the corpus and the
// tokenizer, train a small GPT from scratch with the same Trainer `finetune` uses, and write
// checkpoints/demo (Turing format + vocab.json/merges.txt) and the demo tasks' data.

import ArgumentParser
import Foundation
import Evaluation
import Checkpoints
import Model
import TensorCore
import Tokenizers
import Training

struct MakeDemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "make-demo", abstract: "Developer: regenerate the demo corpus, tokenizer, tasks and model (checkpoints/demo).", shouldDisplay: false)
    @Option(help: "Model output directory.") var output = "checkpoints/demo"
    @Option(name: .customLong("task-data"), help: "Where the demo tasks' JSONL files go.") var taskData = "tasks/data"
    @Option var steps = 300
    @Option var seed: UInt64 = 2026

    func run() throws {
        let out = URL(fileURLWithPath: output)
        let fm = FileManager.default
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        // tokenizer
        let (vocab, merges) = DemoCorpus.tokenizerFiles()
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        try writeFileAtomically(try enc.encode(vocab), to: out.appendingPathComponent("vocab.json"))
        try writeFileAtomically(Data((["#version: 0.2"] + merges.map { "\($0.0) \($0.1)" }).joined(separator: "\n").utf8 + [0x0A]),
                            to: out.appendingPathComponent("merges.txt"))
        let tok = try GPT2Tokenizer(vocabFile: out.appendingPathComponent("vocab.json").path, mergesFile: out.appendingPathComponent("merges.txt").path)
        let eos = tok.eosToken ?? vocab["<|endoftext|>"]!
        // tasks
        let tdir = URL(fileURLWithPath: taskData)
        for (name, docs) in DemoCorpus.taskDocuments(seed: seed &+ 1) {
            let lines = try docs.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
            try writeFileAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: tdir.appendingPathComponent("\(name).jsonl"))
        }
        // corpus -> rows
        let T = 64
        let docs = DemoCorpus.documents(3000, seed: seed).map { encodePlain(tok, $0) }
        let rows = Datasets.pack(docs, eos: eos, seqLength: T)
        let config = ModelConfig(vocabSize: tok.vocabSize, hiddenSize: 64, numLayers: 2, numHeads: 4, maxPositions: 128,
                                 activation: .geluTanh, bosToken: eos, eosToken: eos)
        let layout = ParameterLayout(config: config)
        let tc = TrainerConfig(microBatch: 8, globalBatch: 16, steps: steps,
                               schedule: LRSchedule(lr: 3e-3, minLR: 3e-4, warmup: 20, decaySteps: steps), seed: seed)
        let trainer = try Trainer(executor: InProcessTraining(config: config), rows: rows, config: tc)
        var state = TrainerState(params: try layout.flatten(.random(config: config, seed: seed, std: 0.02)), adam: AdamW(layout: layout), step: 0)
        log("demo: vocab \(tok.vocabSize), \(rows.count) rows of \(T + 1) tokens, \(steps) steps")
        try trainer.run(&state, onStep: { r in
            if r.step % 25 == 0 || r.step == 1 { log(String(format: "step %4d  loss %.4f  lr %.2e  grad norm %.3f", r.step, r.loss, r.lr, r.gradNorm)) }
        }, save: { s in
            guard s.step == steps else { return }
            let ckpt = CanonicalCheckpoint(config: config, tensors: layout.tensors(s.params), format: "turing")
            try TuringFormat.save(ckpt, trainer: ["step": s.step, "seed": Int(seed), "corpus": "DemoCorpus.documents(3000, seed: \(seed))"], to: out, iteration: s.step)
        })
        log("wrote \(output) and \(taskData)/demo_*.jsonl")
    }
}
