// SavedTokenizerArgs: the tokenizer fields of a Megatron-style save's args, read from one small pickle (no tensors).
// Contract: `read(checkpoint)` follows the save's tracker file as the loaders do (`SaveFolders.current`), then
// decodes only the `data.pkl` of the first of `common.pt` (torch_dist), `mp_rank_00[_000]/model_optim_rng.pt` or
// `model_rng.pt` (Megatron), `mp_rank_00_model_states.pt` (DeepSpeed) and returns its `args`; nil when there is no such file, it cannot be decoded, or it holds no
// `tokenizer_type` after the overrides (callers then fall back to the full checkpoint read, which knows every layout).

import Foundation
import Checkpoints
import Tokenizers

enum SavedTokenizerArgs {
    /// `overrides`: `--megatron-arg key=value` values (MegatronArgs.parseOverrides), over the saved ones.
    static func read(_ checkpoint: String, overrides: [String: PickleValue] = [:]) -> MegatronTokenizerArgs? {
        let fm = FileManager.default
        let dir = URL(fileURLWithPath: checkpoint)
        let folder = (try? SaveFolders.current(dir)).flatMap { $0 } ?? dir   // the loaders' tracker rules
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
