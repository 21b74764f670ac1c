// LocalHTTPServer: a tiny HTTP/1.1 file server on 127.0.0.1 for the Downloader tests (POSIX sockets, one
// thread per connection, `Connection: close`).
//
// Contract: GET /NAME answers the bytes registered under NAME: 200 with the whole body, or 206 with
// Content-Range for `Range: bytes=N-`; unknown names are 404. Per-file behaviours: `.dropAfter(k, times)`
// sends full headers then only k body bytes and closes, for the first `times` requests of that file;
// `.ignoreRange` answers 200 with the whole body even to a Range request. Every request is logged
// (path, Range header) so tests can count requests and check what was asked. Test code only.

import Foundation
#if canImport(Glibc)
import Glibc
private let sockStream = Int32(SOCK_STREAM.rawValue)
private let noSigPipe = Int32(MSG_NOSIGNAL)
#elseif canImport(Darwin)
import Darwin
private let sockStream = SOCK_STREAM
private let noSigPipe: Int32 = 0          // SO_NOSIGPIPE is set on each connection instead
#endif

final class LocalHTTPServer: @unchecked Sendable {
    enum Behaviour { case normal, dropAfter(Int, times: Int), ignoreRange }
    struct Request: Equatable { let path: String; let range: String? }

    private let lock = NSLock()
    private var files: [String: (Data, Behaviour)] = [:]
    private var served: [String: Int] = [:]
    private var log: [Request] = []
    private var listener: Int32 = -1
    private(set) var port: UInt16 = 0

    init() throws {
        listener = socket(AF_INET, sockStream, 0)
        guard listener >= 0 else { throw NSError(domain: "LocalHTTPServer", code: 1) }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0, listen(listener, 16) == 0 else { close(listener); throw NSError(domain: "LocalHTTPServer", code: 2) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) }
        }
        port = UInt16(bigEndian: addr.sin_port)
        let fd = listener
        Thread.detachNewThread { [weak self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }                                 // the listener was closed
                guard let self else { close(c); return }
                #if canImport(Darwin)
                var one: Int32 = 1
                setsockopt(c, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
                #endif
                Thread.detachNewThread { self.serve(c) }
            }
        }
    }

    deinit { stop() }

    func stop() {
        lock.lock(); let fd = listener; listener = -1; lock.unlock()
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    func set(_ name: String, _ data: Data, _ behaviour: Behaviour = .normal) {
        lock.lock(); files[name] = (data, behaviour); served[name] = 0; lock.unlock()
    }

    var requests: [Request] { lock.lock(); defer { lock.unlock() }; return log }

    // MARK: - One connection

    private func serve(_ c: Int32) {
        defer { close(c) }
        var buf = [UInt8](repeating: 0, count: 8192)
        var head = Data()
        while !(head.range(of: Data("\r\n\r\n".utf8)) != nil) {
            let n = recv(c, &buf, buf.count, 0)
            if n <= 0 { return }
            head.append(contentsOf: buf[0..<n])
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let name = String(parts[1].dropFirst())
        let range = lines.dropFirst().first { $0.lowercased().hasPrefix("range:") }
            .map { $0.dropFirst("range:".count).trimmingCharacters(in: .whitespaces) }

        lock.lock()
        log.append(Request(path: name, range: range))
        let entry = files[name]
        let count = served[name, default: 0]
        served[name] = count + 1
        lock.unlock()

        guard let (body, behaviour) = entry else {
            sendText(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
            return
        }
        var start = 0
        if case .ignoreRange = behaviour {} else if let r = range, r.hasPrefix("bytes="), r.hasSuffix("-"),
                                                    let n = Int(r.dropFirst(6).dropLast()) {
            start = n
        }
        if start >= body.count && start > 0 {
            sendText(c, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */\(body.count)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        }
        let header = start > 0
            ? "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes \(start)-\(body.count - 1)/\(body.count)\r\n"
            : "HTTP/1.1 200 OK\r\n"
        sendText(c, header + "Content-Length: \(body.count - start)\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
        var end = body.count
        if case .dropAfter(let k, let times) = behaviour, count < times { end = min(body.count, start + k) }
        body[start..<end].withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = send(c, p.baseAddress! + off, p.count - off, noSigPipe)
                if n <= 0 { return }
                off += n
            }
        }
        if end < body.count { shutdown(c, Int32(SHUT_RDWR)) }       // the drop: close mid-body
    }

    private func sendText(_ c: Int32, _ s: String) {
        let d = Array(s.utf8)
        _ = d.withUnsafeBytes { send(c, $0.baseAddress!, $0.count, noSigPipe) }
    }
}
