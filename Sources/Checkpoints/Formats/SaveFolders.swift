// SaveFolders: where a Megatron-style save keeps its current files, resolved and checked as the loaders
// resolve them: `latest_checkpointed_iteration.txt` (Megatron legacy and torch_dist: `iter_%07d/` or
// `release/`) or `latest` (DeepSpeed: a tag folder inside the save, never a path out of it). For readers
// of one small file of a save (its saved args) that must not repeat these rules.

import Foundation

public enum SaveFolders {
    /// The folder holding the save's current files; nil when `dir` has neither tracker file. Throws the
    /// loaders' errors for a tracker that names no iteration or a tag that leaves the save.
    public static func current(_ dir: URL) throws -> URL? {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir.appendingPathComponent(MegatronLegacyAdapter.tracker).path) {
            return try MegatronLegacyAdapter.iterationDir(dir).0
        }
        let latest = dir.appendingPathComponent("latest")
        guard fm.fileExists(atPath: latest.path) else { return nil }
        let tag = try readText(latest)
        try DeepSpeedAdapter.checkTag(tag, dir)
        return dir.appendingPathComponent(tag)
    }
}
