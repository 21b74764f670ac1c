// ProtobufReader: a minimal, bounds-checked protobuf wire-format reader (varint, 64-bit, length-delimited, 32-bit).
// Contract: reads untrusted bytes; every read is checked against the buffer end and malformed input raises
// TokenizerError.invalidFormat naming `source`, the byte offset and what was expected. Groups (wire types 3/4)
// are refused. Unknown fields are skipped by the caller through `skip(wireType:)`.

import Foundation

struct ProtobufReader {
    let bytes: [UInt8]
    private(set) var pos: Int
    let end: Int
    let source: String

    init(_ bytes: [UInt8], source: String) { self.bytes = bytes; pos = 0; end = bytes.count; self.source = source }
    private init(_ bytes: [UInt8], from: Int, to: Int, source: String) { self.bytes = bytes; pos = from; end = to; self.source = source }

    var atEnd: Bool { pos >= end }

    func fail(_ what: String) -> TokenizerError {
        .invalidFormat("\(source): byte \(pos): \(what)")
    }

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard pos < end else { throw fail("varint runs past the end of the message") }
            let b = bytes[pos]; pos += 1
            guard shift < 64 else { throw fail("varint longer than 10 bytes") }
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    /// (field number, wire type), or nil at the end of the message.
    mutating func tag() throws -> (field: Int, wire: Int)? {
        if atEnd { return nil }
        let t = try varint()
        guard t >> 3 > 0, t >> 3 < (1 << 29) else { throw fail("field number \(t >> 3) out of range") }
        return (Int(t >> 3), Int(t & 7))
    }

    mutating func fixed32() throws -> UInt32 {
        guard end - pos >= 4 else { throw fail("expected 4 bytes of a fixed32, found \(end - pos)") }
        let v = UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16 | UInt32(bytes[pos + 3]) << 24
        pos += 4
        return v
    }

    mutating func lengthDelimited() throws -> Range<Int> {
        let n = try varint()
        guard n <= UInt64(end - pos) else { throw fail("length \(n) runs past the end of the message (\(end - pos) bytes left)") }
        let r = pos..<(pos + Int(n))
        pos += Int(n)
        return r
    }

    mutating func string() throws -> String {
        let r = try lengthDelimited()
        guard let s = String(validating: bytes[r], as: UTF8.self) else { throw fail("string field is not valid UTF-8") }
        return s
    }

    mutating func bytesField() throws -> [UInt8] { Array(bytes[try lengthDelimited()]) }

    mutating func message() throws -> ProtobufReader {
        let r = try lengthDelimited()
        return ProtobufReader(bytes, from: r.lowerBound, to: r.upperBound, source: source)
    }

    mutating func bool() throws -> Bool { try varint() != 0 }

    mutating func int32() throws -> Int32 { Int32(truncatingIfNeeded: try varint()) }

    mutating func float() throws -> Float { Float(bitPattern: try fixed32()) }

    /// Checks the wire type of a known field.
    func expect(_ wire: Int, _ want: Int, field: String) throws {
        guard wire == want else { throw fail("field \(field): expected wire type \(want), found \(wire)") }
    }

    mutating func skip(wireType: Int) throws {
        switch wireType {
        case 0: _ = try varint()
        case 1:
            guard end - pos >= 8 else { throw fail("expected 8 bytes of a fixed64") }
            pos += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw fail("unsupported wire type \(wireType)")
        }
    }
}
