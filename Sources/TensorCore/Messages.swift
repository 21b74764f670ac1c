// Messages: how an error reaches a person. `plainReason` turns Foundation's errors (NSError /
// CocoaError, DecodingError, EncodingError) into one readable clause (no "Error Domain=..." dumps, no coding-path
// internals); `escapeControls` shows control characters from files as \u{..} so a hostile name cannot
// drive the terminal (newlines and tabs, which our own multi-line messages use, are kept).

import Foundation

/// One readable clause for `error`: our own typed errors as they describe themselves, Foundation's
/// errors by what went wrong.
public func plainReason(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let k, let c): return "missing field \"\(path(c.codingPath + [k]))\""
    case DecodingError.typeMismatch(let t, let c):
        return c.codingPath.isEmpty ? "expected \(typeName(t))" : "field \"\(path(c.codingPath))\": expected \(typeName(t))"
    case DecodingError.valueNotFound(let t, let c): return "field \"\(path(c.codingPath))\": expected \(typeName(t)), found null"
    case DecodingError.dataCorrupted(let c):
        if let u = c.underlyingError { return "not valid JSON: " + jsonReason(u) }
        return c.codingPath.isEmpty ? "not valid JSON" : "field \"\(path(c.codingPath))\": \(c.debugDescription)"
    case EncodingError.invalidValue(let v, let c):
        return "cannot write \(v) as JSON" + (c.codingPath.isEmpty ? "" : " at \"\(path(c.codingPath))\"") + " (JSON has no NaN or infinity)"
    default: break
    }
    let ns = error as NSError
    let foundation = type(of: error) is NSError.Type || error is CocoaError || [NSCocoaErrorDomain, NSPOSIXErrorDomain].contains(ns.domain)
    if !foundation { return "\(error)" }   // our own typed errors describe themselves
    if ns.domain == NSCocoaErrorDomain && ns.code == 3840 { return "not valid JSON: " + jsonReason(error) }
    if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(u.code))) }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    switch CocoaError.Code(rawValue: ns.code) {
    case .fileReadNoSuchFile, .fileNoSuchFile: return "no such file"
    case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
    case .fileWriteOutOfSpace: return "no space left on the device"
    case .fileReadCorruptFile: return "the file is corrupt"
    case .fileReadInapplicableStringEncoding: return "not valid UTF-8 text"
    default: return ns.localizedDescription
    }
}

private func jsonReason(_ e: Error) -> String {
    let ns = e as NSError
    return (ns.userInfo[NSDebugDescriptionErrorKey] as? String).map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 } ?? "malformed"
}

private func path(_ keys: [CodingKey]) -> String {
    keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
}

private func typeName(_ t: Any.Type) -> String {
    switch t {
    case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    default: return "\(t)".hasPrefix("Array") ? "a list" : (("\(t)".hasPrefix("Dictionary")) ? "an object" : "a \(t)")
    }
}

/// `s` with control characters (other than newline and tab) and DEL/C1 shown as \u{..}.
public func escapeControls(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        if (u.value < 0x20 && u.value != 0x0A && u.value != 0x09) || (0x7F...0x9F).contains(u.value) {
            out += "\\u{\(String(u.value, radix: 16))}"
        } else { out.unicodeScalars.append(u) }
    }
    return out
}
