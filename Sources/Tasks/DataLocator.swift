// DataLocator: where a task's data file (or `.lst` labels file) is read from.
//
// Contract: the first of these that exists wins:
//   1. `dataDir/<file>` (`--data-dir`, by the relative name the YAML gives),
//   2. `<folder of the task YAML>/<file>` (data that ships with Turing, such as the demo tasks),
//   3. the download cache, `<cache>/<sha256>/<name of the URL>` (Downloader's layout),
//   4. a download of the YAML's `url`, verified against its `sha256` (not when `offline`, or without a cache).
// Otherwise a TaskError lists every place looked and why no download was made. Local files (1, 2) are taken
// as they are: the pin verifies downloads, not a copy the user points at. Download failures are the
// Downloader's typed `DownloadError`s, unchanged.
// Containment: the YAML's name is data, not a path the user gave: it must be relative, without `..`
// components, and the file found (symlinks resolved) must lie inside the root it was found under
// (the data folder or the task's folder); else a TaskError names the task, the name and the root.

import Foundation

public struct DataLocator {
    public var dataDir: String
    /// The download cache and how to fill it; nil: local files only.
    public var downloads: Downloader?
    /// Read the download cache but never download.
    public var offline: Bool

    public init(dataDir: String, downloads: Downloader? = nil, offline: Bool = false) {
        self.dataDir = dataDir; self.downloads = downloads; self.offline = offline
    }

    /// The local path of `file`, downloading it if the order above comes to that. `task` is the YAML's path.
    public func locate(_ file: DataFile, task: String) throws -> String {
        var looked: [String] = []
        let parts = file.path.split(separator: "/", omittingEmptySubsequences: false)
        guard !file.path.isEmpty, !file.path.hasPrefix("/"), !parts.contains("..") else {
            throw TaskError("\(task): data file \"\(escapedForMessage(file.path))\" must be a relative name inside the data folder (no leading /, no ..)")
        }
        let roots = [dataDir, (task as NSString).deletingLastPathComponent]
        for root in roots {
            let c = ((root.isEmpty ? "." : root) as NSString).appendingPathComponent(file.path)
            if looked.contains(c) { continue }
            if FileManager.default.fileExists(atPath: c) {
                guard let r = realPath(c), let base = realPath(root.isEmpty ? "." : root), r == base || r.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
                    throw TaskError("\(task): data file \(c) resolves outside \(root) (a symbolic link leads out of the data folder)")
                }
                return c
            }
            looked.append(c)
        }
        let why: String
        if let url = file.url, let sha = file.sha256 {
            if let dl = downloads {
                if let c = dl.cached(url: url, sha256: sha) { return c.path }
                looked.append(dl.cachedFile(url: url, sha256: sha).path)
                if !offline { return try dl.fetch(url: url, sha256: sha).path }
                why = "not downloaded from \(url) because of --offline"
            } else {
                why = "no download cache, so \(url) was not fetched"
            }
        } else {
            why = "the task gives no url to download it from"
        }
        throw TaskError("\(task): data file \(file.path) not found; looked in \(looked.joined(separator: ", ")); \(why) "
                        + "(pass --data-dir, or set TURING_SHARED_DATA)")
    }
}

private func realPath(_ p: String) -> String? {
    guard let r = realpath(p, nil) else { return nil }
    defer { free(r) }
    return String(cString: r)
}

/// `s` with control characters shown as \u{..}: names from files are data, never terminal commands.
func escapedForMessage(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        if u.value < 0x20 || (0x7F...0x9F).contains(u.value) { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
    }
    return out
}
