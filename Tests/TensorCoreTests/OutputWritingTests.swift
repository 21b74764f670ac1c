// How outputs are written, by what is at the path (class 1): regular files replaced atomically with
// their permission bits kept, symbolic links kept and their targets written, character devices and
// FIFOs written in place (never replaced), write errors (ENOSPC on /dev/full) thrown, directories
// refused (7 variants).

import XCTest
import Foundation
import TensorCore

final class OutputWritingTests: XCTestCase {
    func dir() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("turing-out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: u) }
        return u
    }

    func kind(_ path: String) -> mode_t { var st = stat(); XCTAssertEqual(lstat(path, &st), 0); return st.st_mode & S_IFMT }

    func testRegularFilesAreReplacedAtomicallyKeepingTheirMode() throws {
        let d = try dir(), f = d.appendingPathComponent("sub/out.txt")
        XCTAssertEqual(try writeFileAtomically(Data("one".utf8), to: f), .replaced)   // folder created
        chmod(f.path, 0o600)
        XCTAssertEqual(try writeFileAtomically(Data("two".utf8), to: f), .replaced)
        XCTAssertEqual(try String(contentsOf: f, encoding: .utf8), "two")
        var st = stat(); stat(f.path, &st); XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: f.deletingLastPathComponent().path), ["out.txt"], "no temporary left")
    }

    func testSymlinksAreKeptAndTheirTargetsWritten() throws {
        let d = try dir(), target = d.appendingPathComponent("real.txt"), link = d.appendingPathComponent("link.txt")
        try Data("old".utf8).write(to: target)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "real.txt")
        XCTAssertEqual(try writeFileAtomically(Data("new".utf8), to: link), .replaced)
        XCTAssertEqual(kind(link.path), S_IFLNK)
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "new")
        // a dangling link: its target is created, the link kept
        let dangling = d.appendingPathComponent("dangling"), missing = d.appendingPathComponent("made.txt")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: "made.txt")
        try writeFileAtomically(Data("x".utf8), to: dangling)
        XCTAssertEqual(kind(dangling.path), S_IFLNK); XCTAssertEqual(try String(contentsOf: missing, encoding: .utf8), "x")
    }

    func testDevicesAndFIFOsAreWrittenInPlace() throws {
        XCTAssertEqual(try writeFileAtomically(Data("x".utf8), to: URL(fileURLWithPath: "/dev/null")), .writtenInPlace)
        XCTAssertEqual(kind("/dev/null"), S_IFCHR)
        let d = try dir(), fifo = d.appendingPathComponent("pipe")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let got = LockedData()
        let reader = Thread { got.set(FileHandle(forReadingAtPath: fifo.path)?.readDataToEndOfFile() ?? Data()) }
        reader.start()
        XCTAssertEqual(try writeFileAtomically(Data("through the pipe".utf8), to: fifo), .writtenInPlace)
        for _ in 0..<200 where got.get() == nil { usleep(10_000) }
        XCTAssertEqual(got.get().map { String(decoding: $0, as: UTF8.self) }, "through the pipe")
        XCTAssertEqual(kind(fifo.path), S_IFIFO, "still a FIFO")
    }

    func testWriteErrorsAndDirectoriesThrow() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full on this machine") }
        XCTAssertThrowsError(try writeFileAtomically(Data(repeating: 1, count: 1 << 16), to: URL(fileURLWithPath: "/dev/full"))) { e in
            XCTAssertEqual("\(e)", "cannot write /dev/full: No space left on device")
        }
        XCTAssertEqual(kind("/dev/full"), S_IFCHR, "/dev/full is still the device")
        let d = try dir()
        XCTAssertThrowsError(try writeFileAtomically(Data("x".utf8), to: d)) { e in XCTAssertEqual("\(e)", "cannot write \(d.path): it is a directory") }
    }
}

final class LockedData: @unchecked Sendable {
    private var d: Data?; private let l = NSLock()
    func set(_ x: Data) { l.lock(); d = x; l.unlock() }
    func get() -> Data? { l.lock(); defer { l.unlock() }; return d }
}
