// CheckpointError: every failure the Checkpoints target reports, each naming the file (and tensor,
// when there is one) and, for mismatches, what was expected versus what was found.
//
// Owns: the error cases and their human-readable messages. Does not own: detection logic.

public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read.
    case io(file: String, String)
    /// Not a zip archive, or a corrupt one.
    case badZip(file: String, String)
    /// The file ends before a structure it declares.
    case truncated(file: String, String)
    /// A zip entry is compressed; PyTorch writes stored entries only.
    case compressedEntry(file: String, entry: String, method: Int)
    /// A record the pickle refers to is not in the archive.
    case missingRecord(file: String, record: String)
    /// Malformed pickle stream.
    case badPickle(file: String, String)
    /// The pickle names a global that could execute code; nothing was run.
    case forbiddenGlobal(file: String, String)
    /// Pre-1.6 torch.save stream (not a zip archive).
    case unsupportedLegacyFormat(file: String)
    case badSafetensors(file: String, String)
    case unsupportedDType(file: String, tensor: String, String)
    case missingTensor(file: String, tensor: String)
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    /// A tensor view reaches outside its storage.
    case outOfBounds(file: String, tensor: String, String)
    case unknownModelType(file: String, String)
    case badConfig(file: String, String)
    /// A rank/shard directory or file the layout requires is absent.
    case missingShard(file: String, String)
    case unsupportedCheckpointVersion(file: String, Double)
    case unknownFormat(path: String, String)
    /// Unrecognised tensor names inside a shard.
    case unexpectedTensors(file: String, [String])
    /// Two rank files (or layer files) of one save disagree, or one sits where another belongs.
    case rankMismatch(files: [String], String)
    /// A tensor holds NaN or infinite values.
    case nonFinite(file: String, tensor: String, count: Int)
    /// A zip entry's bytes do not match the CRC-32 its central directory records.
    case checksumMismatch(file: String, entry: String, expected: UInt32, found: UInt32)

    public var description: String {
        switch self {
        case .io(let f, let m): return "\(f): cannot read: \(m)"
        case .badZip(let f, let m): return "\(f): not a valid zip archive: \(m)"
        case .truncated(let f, let m): return "\(f): file is truncated: \(m)"
        case .compressedEntry(let f, let e, let m):
            return "\(f): zip entry '\(e)' uses compression method \(m); only stored (uncompressed) entries are supported"
        case .missingRecord(let f, let r): return "\(f): record '\(r)' is missing from the archive"
        case .badPickle(let f, let m): return "\(f): malformed pickle: \(m)"
        case .forbiddenGlobal(let f, let g):
            return "\(f): refusing pickle global '\(g)': it could execute code (nothing was executed)"
        case .unsupportedLegacyFormat(let f):
            return "\(f): unsupported legacy (pre-1.6, non-zip) torch.save format; re-save it with a current torch"
        case .badSafetensors(let f, let m): return "\(f): invalid safetensors file: \(m)"
        case .unsupportedDType(let f, let t, let d): return "\(f): tensor '\(t)' has unsupported dtype \(d)"
        case .missingTensor(let f, let t): return "\(f): tensor '\(t)' is missing"
        case .shapeMismatch(let f, let t, let e, let x): return "\(f): tensor '\(t)' has shape \(x), expected \(e)"
        case .outOfBounds(let f, let t, let m): return "\(f): tensor '\(t)' reaches outside its storage: \(m)"
        case .unknownModelType(let f, let m): return "\(f): unknown model type \(m)"
        case .badConfig(let f, let m): return "\(f): bad configuration: \(m)"
        case .missingShard(let f, let m): return "\(f): missing shard: \(m)"
        case .unsupportedCheckpointVersion(let f, let v):
            return "\(f): unsupported checkpoint_version \(v) (supported: 0, 1.0, 2.0, 3.0)"
        case .unknownFormat(let p, let m): return "\(p): cannot recognise the checkpoint format: \(m)"
        case .unexpectedTensors(let f, let n):
            return "\(f): unrecognised tensors \(n.prefix(8).joined(separator: ", "))\(n.count > 8 ? " (and \(n.count - 8) more)" : "")"
        case .rankMismatch(let fs, let m): return "\(fs.joined(separator: " and ")): ranks disagree: \(m)"
        case .nonFinite(let f, let t, let n): return "\(f): tensor '\(t)' holds \(n) NaN or infinite values; refusing to run a model with non-finite weights"
        case .checksumMismatch(let f, let e, let x, let y):
            return "\(f): zip entry '\(e)' is corrupt: CRC-32 \(hex8(y)), the archive records \(hex8(x)) (pass --no-verify-checksums to load it anyway)"
        }
    }
}

func hex8(_ v: UInt32) -> String { let h = String(v, radix: 16); return String(repeating: "0", count: 8 - h.count) + h }
