// Test harness: the demo model (checkpoints/demo, in the repo) behind a TuringServer on 127.0.0.1 at a
// free port, and a plain HTTP/1.1 client over POSIX sockets (so a test can also drop a connection
// mid-stream, as a killed client does).

import Foundation
import XCTest
import Checkpoints
import Engine
import Model
import Tokenizers
@testable import Serving
#if canImport(Glibc)
import Glibc
#endif

enum Demo {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let loaded: (DecoderModel, GPT2Tokenizer) = {
        let dir = repo.appendingPathComponent("checkpoints/demo")
        let ckpt = try! TuringFormat.load(dir).checkpoint
        let tok = try! GPT2Tokenizer(vocabFile: dir.appendingPathComponent("vocab.json").path, mergesFile: dir.appendingPathComponent("merges.txt").path)
        return (DecoderModel(weights: try! DecoderWeights(ckpt)), tok)
    }()
}

struct HTTPResult {
    var status: Int
    var headers: [String: String]   // lower-cased names
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> JSON { try JSON.parse(body) }
}

final class RawHTTP {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { close(fd); throw NSError(domain: "connect", code: Int(errno)) }
    }
    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
    /// Up to `max` bytes, or [] at end of stream.
    func receive(max: Int = 65536) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: max)
        let n = buf.withUnsafeMutableBufferPointer { recv(fd, $0.baseAddress, max, 0) }
        return n > 0 ? Array(buf[0..<n]) : []
    }
    func readAll() -> [UInt8] { var out: [UInt8] = []; while true { let b = receive(); if b.isEmpty { return out }; out += b } }

    static func request(_ port: Int, _ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) throws -> HTTPResult {
        let c = try RawHTTP(port: port)
        c.send(requestBytes(method, path, body: body, headers: headers))
        return try parse(c.readAll())
    }
    static func request(_ port: Int, _ method: String, _ path: String, json: String, headers: [String: String] = [:]) throws -> HTTPResult {
        try request(port, method, path, body: Array(json.utf8), headers: headers.merging(["Content-Type": "application/json"]) { a, _ in a })
    }

    static func requestBytes(_ method: String, _ path: String, body: [UInt8]?, headers: [String: String]) -> [UInt8] {
        var h = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (k, v) in headers { h += "\(k): \(v)\r\n" }
        if let body { h += "Content-Length: \(body.count)\r\n" }
        h += "\r\n"
        return Array(h.utf8) + (body ?? [])
    }

    static func parse(_ raw: [UInt8]) throws -> HTTPResult {
        guard let sep = findSeq(raw, [13, 10, 13, 10], from: 0) else { throw NSError(domain: "no header end in \(raw.count) bytes", code: 0) }
        let head = String(decoding: raw[..<sep], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ")[1])!
        var headers: [String: String] = [:]
        for line in head.dropFirst() { if let c = line.firstIndex(of: ":") { headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces) } }
        var body = Array(raw[(sep + 4)...])
        if headers["transfer-encoding"] == "chunked" {
            var out: [UInt8] = [], i = 0
            while let e = findSeq(body, [13, 10], from: i) {
                let size = Int(String(decoding: body[i..<e], as: UTF8.self), radix: 16) ?? 0
                if size == 0 { break }
                out += body[(e + 2)..<(e + 2 + size)]; i = e + 2 + size + 2
            }
            body = out
        }
        return HTTPResult(status: status, headers: headers, body: body)
    }
    static func findSeq(_ a: [UInt8], _ s: [UInt8], from: Int) -> Int? {
        guard a.count >= s.count else { return nil }
        var i = from
        while i + s.count <= a.count { if Array(a[i..<(i + s.count)]) == s { return i }; i += 1 }
        return nil
    }
}

/// Runs `body` against a started server on a free port; stops it after (graceful shutdown).
func withServer(_ configure: (inout ServerOptions) -> Void = { _ in }, _ body: (Int, TuringServer) async throws -> Void) async throws {
    var o = ServerOptions()
    o.port = 0; o.modelName = "demo"
    configure(&o)
    let (model, tok) = Demo.loaded
    let server = try TuringServer(model: model, tokenizer: tok, options: o)
    let (ports, cont) = AsyncStream<Int>.makeStream()
    let task = Task { try await server.run { _, port in cont.yield(port) } }
    var it = ports.makeAsyncIterator()
    guard let port = await it.next() else { XCTFail("server did not start"); return }
    do { try await body(port, server) } catch { task.cancel(); _ = await task.result; throw error }
    task.cancel()
    _ = await task.result
}

/// Server-sent events of a streamed answer: the JSON of each `data:` line, and whether `[DONE]` ended it.
func sseEvents(_ text: String) throws -> (events: [JSON], done: Bool) {
    var events: [JSON] = [], done = false
    for block in text.components(separatedBy: "\n\n") where !block.isEmpty {
        XCTAssertTrue(block.hasPrefix("data: "), "SSE block without 'data: ': \(block)")
        let payload = String(block.dropFirst(6))
        if payload == "[DONE]" { done = true; continue }
        XCTAssertFalse(done, "data after [DONE]")
        events.append(try JSON.parse(Array(payload.utf8)))
    }
    return (events, done)
}
