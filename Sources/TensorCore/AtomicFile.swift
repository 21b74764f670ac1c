// AtomicFile: the one way Turing writes an output file, chosen by what is at the path (lstat):
//   * nothing, or a regular file: a temporary name in the same folder, every byte written and
//     fsync'd, then rename(2) onto the path (the old file's permission bits kept), so a reader never
//     sees a half-written file and a failure leaves the old one intact;
//   * a symbolic link: the same, onto the link's final target (the link itself is kept);
//   * a character device, FIFO or socket (`/dev/stdout`, `/dev/full`, a pipe): opened and written in
//     place, never replaced;
//   * a directory or anything else: refused.
// Every short write or write error (ENOSPC, EPIPE, EIO...) throws `AtomicWriteError` naming the
// path and the reason; nothing is reported written unless all of it was. `writeStandardOutput`
// writes stdout the same checked way.

import Foundation

public struct AtomicWriteError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What `writeFileAtomically` did with the path.
public enum OutputTarget: Equatable, Sendable { case replaced, writtenInPlace }

@discardableResult
public func writeFileAtomically(_ data: Data, to url: URL) throws -> OutputTarget {
    let path = url.path
    var st = stat()
    if lstat(path, &st) == 0 {
        switch st.st_mode & S_IFMT {
        case S_IFLNK:
            guard let target = realpathOrNil(path) else {
                // a dangling link: create its target (the link is kept)
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(path, &buf, buf.count - 1)
                guard n > 0 else { throw AtomicWriteError("cannot write \(path): cannot read the symbolic link (\(errnoText()))") }
                let dest = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let abs = dest.hasPrefix("/") ? dest : (url.deletingLastPathComponent().path as NSString).appendingPathComponent(dest)
                return try writeFileAtomically(data, to: URL(fileURLWithPath: abs))
            }
            return try writeFileAtomically(data, to: URL(fileURLWithPath: target))
        case S_IFREG: try replaceRegularFile(data, path: path, mode: st.st_mode & 0o7777); return .replaced
        case S_IFCHR, S_IFIFO, S_IFSOCK: try writeInPlace(data, path: path); return .writtenInPlace
        case S_IFDIR: throw AtomicWriteError("cannot write \(path): it is a directory")
        default: throw AtomicWriteError("cannot write \(path): it is neither a regular file nor a character device or FIFO")
        }
    }
    guard errno == ENOENT else { throw AtomicWriteError("cannot write \(path): \(errnoText())") }
    let dir = url.deletingLastPathComponent()
    do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
    catch { throw AtomicWriteError("cannot write \(path): cannot create the folder \(dir.path)") }
    try replaceRegularFile(data, path: path, mode: nil)
    return .replaced
}

/// Write `data` to stdout, all of it, or throw (a full disk or a closed pipe is an error).
public func writeStandardOutput(_ data: Data) throws {
    try flushStandardOutput()   // what print() buffered goes first
    try data.withUnsafeBytes { try writeAll(STDOUT_FILENO, $0, what: "standard output") }
}

/// Flush what print() buffered; a write error on stdout (ENOSPC, a closed pipe) throws.
public func flushStandardOutput() throws {
    if fflush(stdout) != 0 || ferror(stdout) != 0 {
        let why = errnoText()
        clearerr(stdout)
        throw AtomicWriteError("cannot write standard output: \(why)")
    }
}

/// Write `data` to an open descriptor, retrying short writes and EINTR; throws on any error.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw AtomicWriteError("cannot write \(what): \(errnoText())") }
        if n == 0 { throw AtomicWriteError("cannot write \(what): the device accepted no bytes") }
        done += n
    }
}

private func replaceRegularFile(_ data: Data, path: String, mode: mode_t?) throws {
    let dir = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
    let tmp = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(".\(name).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ?? 0o644)
    guard fd >= 0 else { throw AtomicWriteError("cannot write \(path): cannot create a temporary file beside it (\(errnoText()))") }
    var open = true
    do {
        if let mode { _ = fchmod(fd, mode) }
        try data.withUnsafeBytes { try writeAll(fd, $0, what: path) }
        guard fsync(fd) == 0 else { throw AtomicWriteError("cannot write \(path): \(errnoText())") }
        open = false
        guard close(fd) == 0 else { throw AtomicWriteError("cannot write \(path): \(errnoText())") }
    } catch {
        if open { close(fd) }
        unlink(tmp)
        throw error
    }
    guard rename(tmp, path) == 0 else {
        let why = errnoText()
        unlink(tmp)
        throw AtomicWriteError("cannot write \(path): \(why)")
    }
}

private func writeInPlace(_ data: Data, path: String) throws {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw AtomicWriteError("cannot write \(path): \(errnoText())") }
    do { try data.withUnsafeBytes { try writeAll(fd, $0, what: path) } } catch { close(fd); throw error }
    guard close(fd) == 0 else { throw AtomicWriteError("cannot write \(path): \(errnoText())") }
}

private func realpathOrNil(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

private func errnoText() -> String { String(cString: strerror(errno)) }
