// AtomicFile: the one way Turing writes an output file: a temporary name in the same folder, then
// rename(2), so a reader never sees a half-written file and a failure leaves the old one intact.

import Foundation

public struct AtomicWriteError: Error, CustomStringConvertible {
    public let description: String
}

public func writeFileAtomically(_ data: Data, to url: URL) throws {
    let dir = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do { try data.write(to: tmp) } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw AtomicWriteError(description: "cannot write \(url.path): \(error)")
    }
    guard rename(tmp.path, url.path) == 0 else {
        let why = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw AtomicWriteError(description: "cannot write \(url.path): \(why)")
    }
}
