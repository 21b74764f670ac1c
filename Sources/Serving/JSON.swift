// JSON: a small exact JSON value for request bodies and responses.
//
// Contract: `JSON.parse` accepts RFC 8259 text only (one value, whitespace around it), keeps the
// integer/float distinction of number literals (an integer literal that fits Int is `.int`), keeps
// object keys in order (a repeated key: the last one wins on lookup, as Python's json does), and
// refuses nesting deeper than 64 levels. Errors name the byte offset. `serialized` writes compact
// JSON; doubles use Swift's shortest round-trip spelling, so a client parses back the same bits.

public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let kv) = self else { return nil }
        return kv.last { $0.0 == key }?.1
    }

    /// The JSON type name as an error message says it.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    public var doubleValue: Double? {
        switch self { case .int(let i): return Double(i); case .double(let d): return d; default: return nil }
    }
}

public struct JSONParseError: Error, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSON {
    public static func parse(_ bytes: [UInt8]) throws -> JSON {
        var p = Parser(b: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw JSONParseError(offset: p.i, reason: "unexpected data after the JSON value") }
        return v
    }

    private struct Parser {
        let b: [UInt8]
        var i = 0
        init(b: [UInt8]) { self.b = b }

        mutating func skipSpace() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        func fail(_ r: String) -> JSONParseError { JSONParseError(offset: i, reason: r) }

        mutating func value(depth: Int) throws -> JSON {
            guard depth < 64 else { throw fail("nesting deeper than 64 levels") }
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1; skipSpace()
                var kv: [(String, JSON)] = []
                if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .object(kv) }
                while true {
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    let k = try string()
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1; skipSpace()
                    kv.append((k, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < b.count else { throw fail("unexpected end of input in an object") }
                    if b[i] == UInt8(ascii: ",") { i += 1; skipSpace(); continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(kv) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1; skipSpace()
                var a: [JSON] = []
                if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                while true {
                    a.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < b.count else { throw fail("unexpected end of input in an array") }
                    if b[i] == UInt8(ascii: ",") { i += 1; skipSpace(); continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return try number()
            }
        }

        mutating func literal(_ s: String) throws {
            let u = Array(s.utf8)
            guard i + u.count <= b.count, Array(b[i..<(i + u.count)]) == u else { throw fail("unexpected token") }
            i += u.count
        }

        mutating func number() throws -> JSON {
            let start = i
            func digits() -> Int { let s = i; while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }; return i - s }
            if i < b.count && b[i] == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            guard digits() > 0 else { i = start; throw fail("unexpected character") }
            if b[intStart] == 0x30 && i - intStart > 1 { throw fail("leading zero in a number") }
            var isInt = true
            if i < b.count && b[i] == UInt8(ascii: ".") { i += 1; isInt = false; guard digits() > 0 else { throw fail("expected digits after '.'") } }
            if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
                i += 1; isInt = false
                if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
                guard digits() > 0 else { throw fail("expected digits in the exponent") }
            }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if isInt, let v = Int(text) { return .int(v) }
            guard let d = Double(text), d.isFinite else { throw JSONParseError(offset: start, reason: "number out of range: \(text)") }
            return .double(d)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x41...0x46: d = c - 0x41 + 10
                case 0x61...0x66: d = c - 0x61 + 10
                default: throw fail("bad hex digit in a \\u escape")
                }
                v = v << 4 | UInt32(d); i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1   // opening quote
            var out: [UInt8] = []
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("control character in a string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]; i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var cp = try hex4()
                    if cp >= 0xD800 && cp < 0xDC00, i + 6 <= b.count, b[i] == 0x5C, b[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let lo = try hex4()
                        if lo >= 0xDC00 && lo < 0xE000 { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00) } else { i = save }
                    }
                    let scalar = Unicode.Scalar(cp) ?? "\u{FFFD}"   // a lone surrogate becomes U+FFFD, as Python's decoder keeps it
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw fail("unknown escape")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }
    }
}

extension JSON {
    /// Compact JSON text.
    public var serialized: String { var s = ""; write(into: &s); return s }

    public func write(into s: inout String) {
        switch self {
        case .null: s += "null"
        case .bool(let v): s += v ? "true" : "false"
        case .int(let v): s += String(v)
        case .double(let v):
            if v.isNaN { s += "NaN" } else if v.isInfinite { s += v < 0 ? "-Infinity" : "Infinity" }   // as Python's json writes and reads them
            else { s += "\(v)" }
        case .string(let v): JSON.escape(v, into: &s)
        case .array(let a):
            s += "["
            for (k, v) in a.enumerated() { if k > 0 { s += "," }; v.write(into: &s) }
            s += "]"
        case .object(let kv):
            s += "{"
            for (k, (key, v)) in kv.enumerated() { if k > 0 { s += "," }; JSON.escape(key, into: &s); s += ":"; v.write(into: &s) }
            s += "}"
        }
    }

    static func escape(_ v: String, into s: inout String) {
        s += "\""
        for u in v.unicodeScalars {
            switch u {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            case "\r": s += "\\r"
            case "\t": s += "\\t"
            default:
                if u.value < 0x20 { s += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) }
                else { s.unicodeScalars.append(u) }
            }
        }
        s += "\""
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral v: String) { self = .string(v) }
    public init(integerLiteral v: Int) { self = .int(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(nilLiteral: ()) { self = .null }
}
