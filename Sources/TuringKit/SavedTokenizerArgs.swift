// SavedTokenizerArgs: the tokenizer fields of a Megatron-style save's args, read from one small pickle (no tensors).
// Contract: `read(checkpoint)` follows `latest_checkpointed_iteration.txt` (Megatron: `iter_%07d` or `release`) or
// `latest` (DeepSpeed: the tag folder) when present, then decodes only the `data.pkl` of the first of `common.pt`
// (torch_dist), `mp_rank_00[_000]/model_optim_rng.pt` or `model_rng.pt` (Megatron), `mp_rank_00_model_states.pt`
// (DeepSpeed) and returns its `args`; nil when there is no such file, it cannot be decoded, or it holds no
// `tokenizer_type` after the overrides (callers then fall back to the full checkpoint read, which knows every layout).

import Foundation
import Checkpoints
import Tokenizers

enum SavedTokenizerArgs {
    /// `overrides`: `--megatron-arg key=value` values (MegatronArgs.parseOverrides), over the saved ones.
    static func read(_ checkpoint: String, overrides: [String: PickleValue] = [:]) -> MegatronTokenizerArgs? {
        let fm = FileManager.default
        let dir = URL(fileURLWithPath: checkpoint)
        func text(_ name: String) -> String? {
            guard let d = fm.contents(atPath: dir.appendingPathComponent(name).path), d.count < 256 else { return nil }
            return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var folder = dir
        if let t = text("latest_checkpointed_iteration.txt") {
            if t == "release" { folder = dir.appendingPathComponent("release") }
            else if let n = Int(t), n >= 0 { folder = dir.appendingPathComponent(String(format: "iter_%07d", n)) }
        } else if let tag = text("latest"), !tag.isEmpty, !tag.contains("/"), tag != ".", tag != ".." {
            folder = dir.appendingPathComponent(tag)
        }
        let candidates = ["common.pt", "mp_rank_00/model_optim_rng.pt", "mp_rank_00_000/model_optim_rng.pt",
                          "mp_rank_00/model_rng.pt", "mp_rank_00_000/model_rng.pt", "mp_rank_00_model_states.pt"]
        guard let file = candidates.map({ folder.appendingPathComponent($0) }).first(where: { fm.fileExists(atPath: $0.path) }),
              let root = try? TorchFile.load(file), let args = root["args"] else { return nil }
        var fields = args.fields.filter { overrides[$0.0] == nil }
        for (k, v) in overrides { fields.append((k, v.readable)) }
        let a = MegatronTokenizerArgs(fields: fields)
        return a.tokenizerType == nil ? nil : a
    }
}
