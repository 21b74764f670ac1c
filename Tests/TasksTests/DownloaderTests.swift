// Downloader and DataLocator against LocalHTTPServer on 127.0.0.1: a complete download, the cache (no second
// request), resuming after a dropped connection (Range header, byte-identical result), a server that ignores
// ranges, retries running out (the partial is kept, then resumed), a checksum mismatch (typed error, nothing
// left in the cache), 404, and a task YAML whose data and labels come through the download end to end.

import XCTest
import TestSupport
import Foundation
@testable import Tasks

final class DownloaderTests: XCTestCase {
    static let sharedData = Paths.sharedData

    var server: LocalHTTPServer!
    var cache: URL!
    /// 300 kB of deterministic bytes and their sha256 (computed by SHA256, itself checked in SHA256Tests)
    let body = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
    var sha: String { SHA256.hex(body) }

    override func setUpWithError() throws {
        server = try LocalHTTPServer()
        cache = FileManager.default.temporaryDirectory.appendingPathComponent("turing-dl-\(UUID().uuidString)")
    }

    override func tearDown() {
        server.stop()
        try? FileManager.default.removeItem(at: cache)
    }

    func downloader(retries: Int = 3) -> Downloader {
        var o = Downloader.Options()
        o.retries = retries; o.retryDelay = 0; o.idleTimeout = 10
        return Downloader(cacheDir: cache, options: o)
    }

    func files(in dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    // MARK: - Downloader

    func testCompleteDownloadThenCacheHit() throws {
        server.set("data.bin", body)
        let seen = Counter()
        var dl = downloader()
        dl.progress = { p in if p.finished { seen.add(Int(p.received)) } }
        let path = try dl.fetch(url: server.url("data.bin"), sha256: sha)
        XCTAssertEqual(path, cache.appendingPathComponent(sha).appendingPathComponent("data.bin"))
        XCTAssertEqual(try Data(contentsOf: path), body)
        XCTAssertEqual(files(in: path.deletingLastPathComponent()), [".lock", "data.bin"], "no .partial left behind")
        XCTAssertEqual(seen.values, [body.count], "one final progress report with every byte")
        XCTAssertEqual(server.requests, [.init(path: "data.bin", range: nil)])
        // second call: served from the cache, no request
        XCTAssertEqual(try dl.fetch(url: server.url("data.bin"), sha256: sha.uppercased()), path)
        XCTAssertEqual(server.requests.count, 1)
    }

    func testConcurrentFetchesTakeTurnsAndDownloadOnce() throws {
        server.set("data.bin", body)
        let dl = downloader(), url = server.url("data.bin"), pin = sha
        let got = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            if let p = try? dl.fetch(url: url, sha256: pin), (try? Data(contentsOf: p)) == body { got.add(1) }
        }
        XCTAssertEqual(got.values.count, 4, "every caller gets the verified file")
        XCTAssertEqual(server.requests.count, 1, "the flock lets one download, the others find its result")
    }

    func testResumesAfterDroppedConnection() throws {
        server.set("data.bin", body, .dropAfter(100_000, times: 1))
        let path = try downloader().fetch(url: server.url("data.bin"), sha256: sha)
        XCTAssertEqual(try Data(contentsOf: path), body, "byte-identical after the resume")
        XCTAssertEqual(server.requests, [.init(path: "data.bin", range: nil), .init(path: "data.bin", range: "bytes=100000-")])
    }

    func testRetriesRunOutKeepThePartialThenANewRunResumes() throws {
        server.set("data.bin", body, .dropAfter(50_000, times: 3))   // three requests each add 50 kB
        let partial = cache.appendingPathComponent(sha).appendingPathComponent("data.bin.partial")
        do {
            _ = try downloader(retries: 2).fetch(url: server.url("data.bin"), sha256: sha)
            XCTFail("expected a network error")
        } catch let e as DownloadError {
            guard case .network(let url, let attempts, _, let p, let kept) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(url, server.url("data.bin"))
            XCTAssertEqual(attempts, 3)
            XCTAssertEqual(p, partial.path)
            XCTAssertEqual(kept, 150_000)
            XCTAssertTrue("\(e)".contains("keeps 150000 bytes; run again to resume"), "\(e)")
        }
        XCTAssertEqual(try Data(contentsOf: partial), body.prefix(150_000), "the partial holds exactly what arrived")
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.deletingPathExtension().path), "no final file")
        // a later run (the server is fine now) resumes where the partial ends
        let path = try downloader().fetch(url: server.url("data.bin"), sha256: sha)
        XCTAssertEqual(try Data(contentsOf: path), body)
        XCTAssertEqual(server.requests.map(\.range), [nil, "bytes=50000-", "bytes=100000-", "bytes=150000-"])
    }

    func testServerIgnoringRangeRestartsFromZero() throws {
        // a partial from an earlier run holding wrong bytes: the 200 answer must replace, not append
        let dir = cache.appendingPathComponent(sha)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(repeating: 0xAB, count: 70_000).write(to: dir.appendingPathComponent("data.bin.partial"))
        server.set("data.bin", body, .ignoreRange)
        let path = try downloader().fetch(url: server.url("data.bin"), sha256: sha)
        XCTAssertEqual(try Data(contentsOf: path), body)
        XCTAssertEqual(server.requests, [.init(path: "data.bin", range: "bytes=70000-")], "asked for a range, got 200, used it whole")
    }

    func testCompletePartialFromAnEarlierRunIsVerifiedNotRefetched() throws {
        // every byte arrived but the process died before the rename: the server answers 416
        let dir = cache.appendingPathComponent(sha)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try body.write(to: dir.appendingPathComponent("data.bin.partial"))
        server.set("data.bin", body)
        let path = try downloader().fetch(url: server.url("data.bin"), sha256: sha)
        XCTAssertEqual(try Data(contentsOf: path), body)
        XCTAssertEqual(server.requests.map(\.range), ["bytes=300000-"])
    }

    func testChecksumMismatchIsTypedAndLeavesNoFile() throws {
        server.set("data.bin", body)
        let wrong = SHA256.hex(Data("something else".utf8))
        XCTAssertThrowsError(try downloader().fetch(url: server.url("data.bin"), sha256: wrong)) { e in
            XCTAssertEqual(e as? DownloadError, .checksumMismatch(url: server.url("data.bin"), expected: wrong, found: sha, bytes: Int64(body.count)))
            XCTAssertTrue("\(e)".contains("sha256 mismatch (expected \(wrong), found \(sha)"), "\(e)")
        }
        XCTAssertEqual(files(in: cache.appendingPathComponent(wrong)), [".lock"], "neither the file nor its partial stays")
        XCTAssertEqual(server.requests.count, 1, "a fresh download that mismatches is not retried")
    }

    func testMismatchAfterAResumeRestartsOnceFromZero() throws {
        // the kept prefix came from another version of the file: one fresh download fixes it
        let dir = cache.appendingPathComponent(sha)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(repeating: 0xCD, count: 1000).write(to: dir.appendingPathComponent("data.bin.partial"))
        server.set("data.bin", body)
        let path = try downloader().fetch(url: server.url("data.bin"), sha256: sha)
        XCTAssertEqual(try Data(contentsOf: path), body)
        XCTAssertEqual(server.requests.map(\.range), ["bytes=1000-", nil])
    }

    func testNotFoundIsAClearErrorWithoutRetries() {
        XCTAssertThrowsError(try downloader().fetch(url: server.url("missing.jsonl"), sha256: sha)) { e in
            XCTAssertEqual(e as? DownloadError, .http(url: server.url("missing.jsonl"), status: 404))
            XCTAssertTrue("\(e)".contains("HTTP 404"), "\(e)")
        }
        XCTAssertEqual(server.requests.count, 1)
        XCTAssertEqual(files(in: cache.appendingPathComponent(sha)), [".lock"], "no partial for a 404")
    }

    func testRefusedConnectionNamesURLAndAttempts() {
        let url = server.url("data.bin")
        server.stop()                                              // nothing listens on the port now
        XCTAssertThrowsError(try downloader(retries: 1).fetch(url: url, sha256: sha)) { e in
            guard case .network(_, 2, _, _, 0)? = e as? DownloadError else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("download \(url) failed after 2 attempts"), "\(e)")
            XCTAssertTrue("\(e)".contains("Nothing arrived; run again when online"), "\(e)")
        }
    }

    func testBadPinsAndURLs() {
        XCTAssertThrowsError(try downloader().fetch(url: server.url("x"), sha256: "abc")) {
            XCTAssertEqual($0 as? DownloadError, .badPin(url: server.url("x"), sha256: "abc"))
        }
        XCTAssertThrowsError(try downloader().fetch(url: "ftp://example.org/x", sha256: sha)) {
            XCTAssertEqual($0 as? DownloadError, .badURL("ftp://example.org/x"))
        }
        XCTAssertEqual(server.requests.count, 0)
    }

    // MARK: - Task data through the download

    let docs = "{\"goal\": \"open a jar\", \"sol1\": \"twist the lid\", \"sol2\": \"eat the lid\"}\n"
        + "{\"goal\": \"dry hands\", \"sol1\": \"use a towel\", \"sol2\": \"use water\"}\n"
    let labels = "0\n0\n"

    func taskYAML() -> String {
        """
        task: t
        output_type: multiple_choice
        data:
          validation: {file: piqa/valid.jsonl, url: "\(server.url("valid.jsonl"))", sha256: \(SHA256.hex(Data(docs.utf8))),
                       labels: piqa/valid-labels.lst, labels_url: "\(server.url("valid-labels.lst"))",
                       labels_sha256: \(SHA256.hex(Data(labels.utf8)))}
        validation_split: validation
        doc_to_text: "Question: {{goal}}\\nAnswer:"
        doc_to_target: label
        doc_to_choice: ["{{sol1}}", "{{sol2}}"]
        metrics: [acc]
        """
    }

    func testTaskDataIsDownloadedOnceThenReadFromTheCache() throws {
        server.set("valid.jsonl", Data(docs.utf8))
        server.set("valid-labels.lst", Data(labels.utf8))
        let empty = cache.appendingPathComponent("no-data").path
        let spec = try TaskSpec.parse(yaml: taskYAML(), file: cache.appendingPathComponent("tasks/t.yaml").path)
        let locator = DataLocator(dataDir: empty, downloads: downloader())
        let task = try LoadedTask(spec: spec, data: locator)
        XCTAssertEqual(task.evalDocs.count, 2)
        XCTAssertEqual(task.evalDocs[1]["goal"], .string("dry hands"))
        XCTAssertEqual(task.evalDocs[1]["label"], .int(0))
        XCTAssertEqual(Set(server.requests.map(\.path)), ["valid.jsonl", "valid-labels.lst"])
        // again, even offline: from the cache, no request
        _ = try LoadedTask(spec: spec, data: DataLocator(dataDir: empty, downloads: downloader(), offline: true))
        XCTAssertEqual(server.requests.count, 2)
    }

    func testDataDirComesFirstAndOfflineErrorListsWhereItLooked() throws {
        server.set("valid.jsonl", Data(docs.utf8))
        let dataDir = cache.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dataDir.appendingPathComponent("piqa"), withIntermediateDirectories: true)
        try docs.write(to: dataDir.appendingPathComponent("piqa/valid.jsonl"), atomically: true, encoding: .utf8)
        try labels.write(to: dataDir.appendingPathComponent("piqa/valid-labels.lst"), atomically: true, encoding: .utf8)
        let spec = try TaskSpec.parse(yaml: taskYAML(), file: cache.appendingPathComponent("tasks/t.yaml").path)
        XCTAssertEqual(try LoadedTask(spec: spec, data: DataLocator(dataDir: dataDir.path, downloads: downloader())).evalDocs.count, 2)
        XCTAssertEqual(server.requests.count, 0, "a local copy is used without a request")

        let empty = cache.appendingPathComponent("no-data").path
        XCTAssertThrowsError(try LoadedTask(spec: spec, data: DataLocator(dataDir: empty, downloads: downloader(), offline: true))) { e in
            let sha = SHA256.hex(Data(docs.utf8))
            for part in ["data file piqa/valid.jsonl not found", "\(empty)/piqa/valid.jsonl",
                         cache.appendingPathComponent("tasks/piqa/valid.jsonl").path,
                         cache.appendingPathComponent("\(sha)/valid.jsonl").path, "--offline"] {
                XCTAssertTrue("\(e)".contains(part), "\"\(e)\" lacks \"\(part)\"")
            }
        }
        XCTAssertEqual(server.requests.count, 0)
    }

    func testDownloadErrorsReachTheTaskLoader() throws {
        let spec = try TaskSpec.parse(yaml: taskYAML(), file: "t.yaml")          // the server has no files: 404
        XCTAssertThrowsError(try LoadedTask(spec: spec, data: DataLocator(dataDir: "/nonexistent", downloads: downloader()))) {
            XCTAssertEqual($0 as? DownloadError, .http(url: server.url("valid.jsonl"), status: 404))
        }
    }

    func testYAMLDownloadFieldsAreChecked() {
        let y = taskYAML()
        func fails(_ yaml: String, _ part: String) {
            XCTAssertThrowsError(try TaskSpec.parse(yaml: yaml, file: "t.yaml")) { XCTAssertTrue("\($0)".contains(part), "\"\($0)\" lacks \"\(part)\"") }
        }
        let sha = SHA256.hex(Data(docs.utf8))
        fails(y.replacingOccurrences(of: ", sha256: \(sha)", with: ""), "data.validation.url needs sha256")
        fails(y.replacingOccurrences(of: "sha256: \(sha)", with: "sha256: 1234"), "sha256 must be 64 hexadecimal digits, found \"1234\"")
        fails(y.replacingOccurrences(of: "url: \"http://", with: "url: \"ftp://"), "must be an http(s) URL")
        fails(y.replacingOccurrences(of: "labels: piqa/valid-labels.lst,", with: ""), "labels_url without labels")
    }

    /// Every url in tasks/*.yaml pins the sha256 of the byte copy in ../shared/data (SOURCES.md says they are
    /// the canonical files), so the pins are the real hashes, not guesses.
    func testShippedPinsMatchSharedCopies() throws {
        let tasks = Paths.packageRoot.appendingPathComponent("tasks")
        guard FileManager.default.fileExists(atPath: Self.sharedData.appendingPathComponent("piqa").path) else { throw XCTSkip("../shared/data absent") }
        var checked: [String] = []
        for f in try FileManager.default.contentsOfDirectory(atPath: tasks.path) where f.hasSuffix(".yaml") {
            let spec = try TaskSpec.load(path: tasks.appendingPathComponent(f).path)
            for src in spec.data.values {
                for file in [src.dataFile] + (src.labelsFile.map { [$0] } ?? []) {
                    guard let sha = file.sha256 else { continue }
                    let local = Self.sharedData.appendingPathComponent(file.path).path
                    XCTAssertEqual(try SHA256.hex(file: local), sha, "\(f): \(file.path)")
                    XCTAssertEqual(URL(string: file.url!)?.lastPathComponent, (file.path as NSString).lastPathComponent, "\(f): \(file.url!)")
                    checked.append(file.path)
                }
            }
        }
        XCTAssertEqual(Set(checked), ["lambada/lambada_test.jsonl", "piqa/valid.jsonl", "piqa/valid-labels.lst", "piqa/train-labels.lst"])
    }
}

/// Values reported from the URLSession delegate queue.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var v: [Int] = []
    func add(_ x: Int) { lock.lock(); v.append(x); lock.unlock() }
    var values: [Int] { lock.lock(); defer { lock.unlock() }; return v }
}
