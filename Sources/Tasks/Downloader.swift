// Downloader: one file from an http(s) URL into a content-addressed cache, verified against a pinned sha256.
//
// Contract:
// - Layout: `<cache>/<sha256>/<name>`, name = the URL's last path component. A file at that path is complete
//   and verified: it only ever gets there by rename(2) after its sha256 matched, so a cached file is trusted
//   by its name and not hashed again (delete the folder to force a fresh download).
// - Bytes go to `<name>.partial` in the same folder. An existing partial (an earlier run that was cut off)
//   is resumed with `Range: bytes=N-`: a 206 appends, a 200 (the server ignores ranges) restarts from zero,
//   a 416 means the partial already holds everything and is verified as it is.
// - A network failure, a 5xx, or a body that ends before its Content-Length is retried `retries` times
//   (each resuming from what arrived), then `DownloadError.network` says how many bytes the partial keeps
//   for the next run. A 4xx other than 416 is `DownloadError.http` at once (no partial is created).
// - A sha256 mismatch deletes the partial and throws `DownloadError.checksumMismatch` (URL, expected and
//   found hash); when the bytes were a resumed download it first restarts once from zero (the kept prefix
//   may belong to another version of the file). The folder then holds no data file, only `.lock`.
// - Concurrent downloads of the same file (two `turing eval` processes) take turns through flock(2) on
//   `<cache>/<sha256>/.lock`; the second one finds the finished file.
// - Progress (bytes, total when known, seconds) goes to a callback at most every 0.25 s and once at the end;
//   printing is the caller's business.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

public enum DownloadError: Error, CustomStringConvertible, Equatable {
    case badPin(url: String, sha256: String)
    case badURL(String)
    case http(url: String, status: Int)
    case network(url: String, attempts: Int, reason: String, partial: String, bytesKept: Int64)
    case checksumMismatch(url: String, expected: String, found: String, bytes: Int64)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .badPin(let u, let s):
            return "\(u): sha256 must be 64 hexadecimal digits, found \"\(s)\""
        case .badURL(let u):
            return "\"\(u)\" is not an http(s) URL"
        case .http(let u, let s):
            return "download \(u) failed: HTTP \(s)\(s == 404 ? " (not found: is the URL right?)" : "")"
        case .network(let u, let n, let why, let p, let kept):
            let keep = kept > 0 ? "The partial file \(p) keeps \(kept) bytes; run again to resume"
                                : "Nothing arrived; run again when online"
            return "download \(u) failed after \(n) attempt\(n == 1 ? "" : "s"): \(why). \(keep), or pass --data-dir with a local copy"
        case .checksumMismatch(let u, let e, let f, let b):
            return "download \(u): sha256 mismatch (expected \(e), found \(f) over \(b) bytes); the download was "
                + "deleted. The file at that URL is not the pinned one: check the task's url and sha256"
        case .io(let p, let why):
            return "\(p): \(why)"
        }
    }
}

public struct DownloadProgress: Sendable {
    public let url: String
    /// Bytes in the partial file now (including what an earlier run left).
    public let received: Int64
    /// Full size when the server said (Content-Length or Content-Range), else nil.
    public let total: Int64?
    /// Bytes the file already held when this transfer started (for the speed: received - resumedFrom).
    public let resumedFrom: Int64
    public let seconds: Double
    public let finished: Bool
}

public struct Downloader {
    public struct Options: Sendable {
        /// Further attempts after a network failure (each one resumes).
        public var retries = 3
        /// Seconds before retry k (times k).
        public var retryDelay = 2.0
        /// Seconds without a byte before an attempt fails.
        public var idleTimeout = 60.0
        public init() {}
    }

    public let cacheDir: URL
    public var options: Options
    public var progress: (@Sendable (DownloadProgress) -> Void)?

    public init(cacheDir: URL, options: Options = Options(), progress: (@Sendable (DownloadProgress) -> Void)? = nil) {
        self.cacheDir = cacheDir; self.options = options; self.progress = progress
    }

    /// Where `url` pinned to `sha256` lives once downloaded (whether or not it does yet).
    public func cachedFile(url: String, sha256: String) -> URL {
        let last = URL(string: url)?.lastPathComponent ?? ""
        let name = String(last.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
        return cacheDir.appendingPathComponent(sha256.lowercased())
            .appendingPathComponent(name.isEmpty || name.hasPrefix(".") ? "download" : name)
    }

    /// The cached file when it is there (complete and verified by construction), else nil.
    public func cached(url: String, sha256: String) -> URL? {
        let f = cachedFile(url: url, sha256: sha256)
        return FileManager.default.fileExists(atPath: f.path) ? f : nil
    }

    /// The verified local copy of `url`, downloading (or resuming) it when the cache lacks it.
    public func fetch(url: String, sha256 pin: String) throws -> URL {
        let sha = pin.lowercased()
        guard sha.count == 64, sha.allSatisfy(\.isHexDigit) else { throw DownloadError.badPin(url: url, sha256: pin) }
        guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? "") else { throw DownloadError.badURL(url) }
        let final = cachedFile(url: url, sha256: sha)
        if FileManager.default.fileExists(atPath: final.path) { return final }
        let dir = final.deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw DownloadError.io(path: dir.path, reason: "cannot create the download cache folder: \(error.localizedDescription)")
        }
        let lock = open(dir.appendingPathComponent(".lock").path, O_CREAT | O_RDWR, 0o644)
        guard lock >= 0 else { throw DownloadError.io(path: dir.path, reason: "cannot create .lock: \(String(cString: strerror(errno)))") }
        defer { close(lock) }                     // closing releases the flock
        flock(lock, LOCK_EX)
        if FileManager.default.fileExists(atPath: final.path) { return final }   // another process finished it

        let partial = URL(fileURLWithPath: final.path + ".partial")
        var failures = 0
        var restartedAfterMismatch = false
        while true {
            let offset = fileSize(partial)
            let outcome = try attempt(u, partial: partial, offset: offset)
            switch outcome {
            case .complete(let resumed), .alreadyComplete(let resumed):
                let found = try SHA256.hex(file: partial.path)
                if found == sha {
                    guard rename(partial.path, final.path) == 0 else {
                        throw DownloadError.io(path: final.path, reason: "cannot rename the verified download into place: \(String(cString: strerror(errno)))")
                    }
                    return final
                }
                let bytes = fileSize(partial)
                try? FileManager.default.removeItem(at: partial)
                if resumed && !restartedAfterMismatch { restartedAfterMismatch = true; continue }
                throw DownloadError.checksumMismatch(url: url, expected: sha, found: found, bytes: bytes)
            case .httpError(let status):
                throw DownloadError.http(url: url, status: status)
            case .failed(let reason):
                failures += 1
                if failures > options.retries {
                    throw DownloadError.network(url: url, attempts: failures, reason: reason, partial: partial.path, bytesKept: fileSize(partial))
                }
                Thread.sleep(forTimeInterval: options.retryDelay * Double(failures))
            }
        }
    }

    // MARK: - One HTTP request

    enum Outcome {
        case complete(resumed: Bool)          // the body arrived in full
        case alreadyComplete(resumed: Bool)   // 416 to a Range request: the partial may hold it all
        case httpError(Int)                   // 4xx: not worth retrying
        case failed(String)                   // network, 5xx, short body, a bad 206: retry (resuming)
    }

    func attempt(_ url: URL, partial: URL, offset: Int64) throws -> Outcome {
        var req = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: options.idleTimeout)
        req.setValue("identity", forHTTPHeaderField: "Accept-Encoding")   // ranges count stored bytes
        if offset > 0 { req.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        let transfer = Transfer(url: url.absoluteString, partial: partial, offset: offset, progress: progress)
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = options.idleTimeout
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: config, delegate: transfer, delegateQueue: queue)
        session.dataTask(with: req).resume()
        transfer.done.wait()
        session.finishTasksAndInvalidate()
        try? transfer.handle?.close()
        if let w = transfer.writeError { throw DownloadError.io(path: partial.path, reason: w) }
        switch transfer.status {
        case 416 where offset > 0: return .alreadyComplete(resumed: true)
        case 400..<500: return .httpError(transfer.status)
        case 200, 206: break
        case 0: return .failed(transfer.error.map(describe) ?? "no response")
        default: return .failed(transfer.badRange ?? "HTTP \(transfer.status)")
        }
        if let bad = transfer.badRange { return .failed(bad) }
        if let e = transfer.error { return .failed(describe(e)) }
        if let total = transfer.total, transfer.received != total {
            return .failed("the connection closed after \(transfer.received) of \(total) bytes")
        }
        return .complete(resumed: transfer.status == 206)
    }

    private func describe(_ e: Error) -> String {
        let ns = e as NSError
        return "\(ns.localizedDescription) (\(ns.domain) \(ns.code))"
    }
}

func fileSize(_ url: URL) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.int64Value ?? 0
}

/// The delegate of one request: writes the body into the partial file as it arrives.
final class Transfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let url: String
    let partial: URL
    let offset: Int64
    let progress: (@Sendable (DownloadProgress) -> Void)?
    let done = DispatchSemaphore(value: 0)
    let started = Date()
    var lastReport = Date.distantPast
    // written on the session's delegate queue, read after `done`
    var handle: FileHandle?
    var status = 0
    var received: Int64 = 0
    var total: Int64?
    var resumedFrom: Int64 = 0
    var error: Error?
    var writeError: String?
    var badRange: String?

    init(url: String, partial: URL, offset: Int64, progress: (@Sendable (DownloadProgress) -> Void)?) {
        self.url = url; self.partial = partial; self.offset = offset; self.progress = progress
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        status = http?.statusCode ?? 0
        let length = response.expectedContentLength >= 0 ? response.expectedContentLength : nil
        switch status {
        case 206:
            // Content-Range: bytes START-END/TOTAL must start where the partial ends
            let cr = http?.value(forHTTPHeaderField: "Content-Range") ?? ""
            let nums = cr.split(whereSeparator: { !$0.isNumber }).compactMap { Int64($0) }
            guard offset > 0, nums.first == offset else {
                badRange = "asked for bytes \(offset)- and got a 206 with Content-Range \"\(cr)\""
                try? FileManager.default.removeItem(at: partial)       // start over on the next attempt
                completionHandler(.cancel); return
            }
            total = nums.count >= 3 ? nums[2] : length.map { offset + $0 }
            received = offset; resumedFrom = offset
        case 200:
            received = 0; total = length                           // a full body: restart from zero
        default:
            completionHandler(.cancel); return
        }
        do {
            if !FileManager.default.fileExists(atPath: partial.path) {
                guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                    throw DownloadError.io(path: partial.path, reason: "cannot create")
                }
            }
            let h = try FileHandle(forWritingTo: partial)
            try h.truncate(atOffset: UInt64(received))
            try h.seek(toOffset: UInt64(received))
            handle = h
        } catch {
            writeError = "cannot write the partial download: \(error)"
            completionHandler(.cancel); return
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard writeError == nil, let h = handle else { return }
        do { try h.write(contentsOf: data) } catch {
            writeError = "cannot write the partial download: \(error)"
            dataTask.cancel(); return
        }
        received += Int64(data.count)
        if Date().timeIntervalSince(lastReport) >= 0.25 { report(finished: false) }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        self.error = error
        if handle != nil { report(finished: true) }
        done.signal()
    }

    private func report(finished: Bool) {
        lastReport = Date()
        progress?(DownloadProgress(url: url, received: received, total: total, resumedFrom: resumedFrom,
                                   seconds: Date().timeIntervalSince(started), finished: finished))
    }
}
