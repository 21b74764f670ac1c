// TuringFormat: Turing's own checkpoint directory, written by `finetune` (model + optimizer + step),
// read back by every command.
//
//   DIR/turing_latest.txt            name of the newest complete iteration directory
//   DIR/iter_0000010/turing_config.json   ModelConfig (strict JSON)
//   DIR/iter_0000010/model.safetensors    canonical tensor names, f32
//   DIR/iter_0000010/optimizer.safetensors adam_m, adam_v (flat, canonical order) - optional
//   DIR/iter_0000010/trainer.json         {"step": N, ...} - optional
// An iteration directory is written with CheckpointWriter.atomicDirectory, then the tracker is
// replaced atomically, so a crash or full disk never leaves a half checkpoint as the latest.

import Foundation
import TensorCore
import Model

public enum TuringFormat {
    public static let tracker = "turing_latest.txt"
    public static let configFile = "turing_config.json"

    /// The iteration directory of a Turing checkpoint at `url` (the save dir or an iteration dir), if it is one.
    public static func resolve(_ url: URL) -> URL? {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.appendingPathComponent(configFile).path) { return url }
        let t = url.appendingPathComponent(tracker)
        if let name = try? String(contentsOf: t, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty,
           fm.fileExists(atPath: url.appendingPathComponent(name).appendingPathComponent(configFile).path) {
            return url.appendingPathComponent(name)
        }
        return nil
    }

    public static func load(_ url: URL) throws -> (checkpoint: CanonicalCheckpoint, optimizer: [String: Tensor]?, trainer: [String: Any]?) {
        guard let dir = resolve(url) else { throw CheckpointError.badConfig(file: url.path, "not a Turing checkpoint (no \(configFile) or \(tracker))") }
        let cfgURL = dir.appendingPathComponent(configFile)
        let config: ModelConfig
        do { config = try JSONDecoder().decode(ModelConfig.self, from: Data(contentsOf: cfgURL)) } catch {
            throw CheckpointError.badConfig(file: cfgURL.path, "\(error)")
        }
        let st = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        var tensors: [String: Tensor] = [:]
        for (name, _) in CanonicalSchema.shapes(for: config) { tensors[name] = try st.tensor(name) }
        let ckpt = CanonicalCheckpoint(config: config, tensors: tensors, format: "turing")
        try ckpt.validate()
        var opt: [String: Tensor]? = nil
        let optURL = dir.appendingPathComponent("optimizer.safetensors")
        if FileManager.default.fileExists(atPath: optURL.path) {
            let o = try SafetensorsFile(url: optURL)
            opt = ["adam_m": try o.tensor("adam_m"), "adam_v": try o.tensor("adam_v")]
        }
        let trainer = (try? Data(contentsOf: dir.appendingPathComponent("trainer.json"))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        return (ckpt, opt, trainer)
    }

    public static func save(_ ckpt: CanonicalCheckpoint, optimizer: [String: Tensor]? = nil, trainer: [String: Any]? = nil,
                            to saveDir: URL, iteration: Int) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: saveDir, withIntermediateDirectories: true)
        let name = String(format: "iter_%07d", iteration)
        do {
            try CheckpointWriter.atomicDirectory(saveDir.appendingPathComponent(name), replace: true) { tmp in
                let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try enc.encode(ckpt.config).write(to: tmp.appendingPathComponent(configFile))
                try SafetensorsWriter.write(ckpt.tensors, to: tmp.appendingPathComponent("model.safetensors"))
                if let optimizer { try SafetensorsWriter.write(optimizer, to: tmp.appendingPathComponent("optimizer.safetensors")) }
                if let trainer { try JSONSerialization.data(withJSONObject: trainer, options: [.sortedKeys, .prettyPrinted]).write(to: tmp.appendingPathComponent("trainer.json")) }
            }
            try writeFileAtomically(Data((name + "\n").utf8), to: saveDir.appendingPathComponent(tracker))
        } catch {
            throw CheckpointError.badConfig(file: saveDir.appendingPathComponent(name).path, "could not write the checkpoint (\(error)); the previous checkpoint is untouched")
        }
    }
}
