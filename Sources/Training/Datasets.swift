// Datasets: training data as rows of T+1 token ids with a loss mask, from
//   - JSONL `{"text": ...}` (language modelling: documents joined by end-of-text and packed),
//   - JSONL `{"prompt": ..., "completion": ...}` (one example per row, loss on the completion only,
//     right-padded with end-of-text and masked),
//   - Megatron's indexed dataset (`.bin` + `.idx`, MMIDIDX version 1), packed like text.
// Bad data is an error naming the file and line (or document), never a silent skip.

import Foundation

public struct TrainingRow: Sendable, Equatable {
    public var tokens: [Int]     // T+1
    public var mask: [Bool]      // T: whether predicting tokens[t+1] counts
}

public enum DatasetError: Error, CustomStringConvertible, Equatable {
    case unreadable(String)
    case malformed(file: String, line: Int, reason: String)
    case emptyDocument(file: String, line: Int)
    case tooLong(file: String, line: Int, tokens: Int, limit: Int)
    case badIndex(file: String, reason: String)
    case empty(String)

    public var description: String {
        switch self {
        case .unreadable(let f): return "cannot read training data \(f)"
        case .malformed(let f, let l, let r): return "\(f):\(l): \(r)"
        case .emptyDocument(let f, let l): return "\(f):\(l): empty document"
        case .tooLong(let f, let l, let n, let m): return "\(f):\(l): example has \(n) tokens, longer than the sequence length \(m) + 1"
        case .badIndex(let f, let r): return "\(f): not a Megatron indexed dataset: \(r)"
        case .empty(let f): return "\(f): no training data"
        }
    }
}

public enum Datasets {
    /// Concatenate documents (each followed by `eos`) and cut into rows of seqLen+1 (last partial row dropped).
    public static func pack(_ docs: [[Int]], eos: Int, seqLength T: Int) -> [TrainingRow] {
        var stream: [Int] = []
        for d in docs { stream += d; stream.append(eos) }
        var rows: [TrainingRow] = []
        var i = 0
        while i + T + 1 <= stream.count {
            rows.append(TrainingRow(tokens: Array(stream[i..<(i + T + 1)]), mask: [Bool](repeating: true, count: T)))
            i += T
        }
        return rows
    }

    /// JSONL: text documents or prompt/completion pairs (decided per file by its first line).
    public static func jsonl(_ path: String, encode: (String) -> [Int], eos: Int, seqLength T: Int) throws -> [TrainingRow] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { throw DatasetError.unreadable(path) }
        var docs: [[Int]] = []
        var rows: [TrainingRow] = []
        var isPairs: Bool? = nil
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw DatasetError.malformed(file: path, line: i + 1, reason: "not a JSON object")
            }
            let pairs = obj["prompt"] != nil || obj["completion"] != nil
            if isPairs == nil { isPairs = pairs }
            if isPairs != pairs { throw DatasetError.malformed(file: path, line: i + 1, reason: "mixes {\"text\"} and {\"prompt\", \"completion\"} lines") }
            if pairs {
                guard let p = obj["prompt"] as? String, let c = obj["completion"] as? String else {
                    throw DatasetError.malformed(file: path, line: i + 1, reason: "\"prompt\" and \"completion\" must both be strings")
                }
                let pt = encode(p), ct = encode(c) + [eos]
                if ct.count <= 1 { throw DatasetError.emptyDocument(file: path, line: i + 1) }
                let all = pt + ct
                if all.count > T + 1 { throw DatasetError.tooLong(file: path, line: i + 1, tokens: all.count, limit: T) }
                var toks = all + [Int](repeating: eos, count: T + 1 - all.count)
                toks = Array(toks.prefix(T + 1))
                // position t predicts toks[t+1]; count it when toks[t+1] is a completion token
                let mask = (0..<T).map { t in t + 1 >= pt.count && t + 1 < all.count }
                rows.append(TrainingRow(tokens: toks, mask: mask))
            } else {
                guard let s = obj["text"] as? String else { throw DatasetError.malformed(file: path, line: i + 1, reason: "missing string field \"text\"") }
                let ids = encode(s)
                if ids.isEmpty { throw DatasetError.emptyDocument(file: path, line: i + 1) }
                docs.append(ids)
            }
        }
        if isPairs != true { rows = pack(docs, eos: eos, seqLength: T) }
        if rows.isEmpty { throw DatasetError.empty(path) }
        return rows
    }

    /// Megatron indexed dataset: `prefix.idx` + `prefix.bin`. Returns the documents' token ids.
    public static func megatronIndexed(prefix: String) throws -> [[Int]] {
        let idxPath = prefix + ".idx", binPath = prefix + ".bin"
        guard let idx = FileManager.default.contents(atPath: idxPath) else { throw DatasetError.unreadable(idxPath) }
        guard let bin = try? Data(contentsOf: URL(fileURLWithPath: binPath), options: .alwaysMapped) else { throw DatasetError.unreadable(binPath) }
        return try idx.withUnsafeBytes { (ib: UnsafeRawBufferPointer) -> [[Int]] in
            guard ib.count >= 34, Array(ib[0..<9]) == Array("MMIDIDX\0\0".utf8) else { throw DatasetError.badIndex(file: idxPath, reason: "missing MMIDIDX magic") }
            func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: ib.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
            guard u64(9) == 1 else { throw DatasetError.badIndex(file: idxPath, reason: "version \(u64(9)), expected 1") }
            let code = ib[17]
            let sizes: [UInt8: Int] = [1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 8: 2]
            guard let el = sizes[code] else { throw DatasetError.badIndex(file: idxPath, reason: "token dtype code \(code) is not an integer type") }
            // counts from the file are bounded by what the file can hold before any arithmetic (this target
            // is built -Ounchecked: an overflow would wrap, not trap)
            let room = ib.count - 34
            guard let n = Int(exactly: u64(18)), let docCount = Int(exactly: u64(26)), n <= room / 12, docCount <= room / 8,
                  12 * n + 8 * docCount <= room else {
                throw DatasetError.badIndex(file: idxPath, reason: "header promises \(u64(18)) sequences and \(u64(26)) documents, more than its \(ib.count) bytes hold")
            }
            var docs: [[Int]] = []
            try bin.withUnsafeBytes { (bb: UnsafeRawBufferPointer) in
                for i in 0..<n {
                    let len = Int(Int32(littleEndian: ib.loadUnaligned(fromByteOffset: 34 + 4 * i, as: Int32.self)))
                    let ptr = Int(Int64(littleEndian: ib.loadUnaligned(fromByteOffset: 34 + 4 * n + 8 * i, as: Int64.self)))
                    guard len >= 0, ptr >= 0, ptr <= bb.count, len <= (bb.count - ptr) / el else {
                        throw DatasetError.badIndex(file: binPath, reason: "sequence \(i) at byte \(ptr) with \(len) tokens runs past the file's \(bb.count) bytes")
                    }
                    var d = [Int](repeating: 0, count: len)
                    for j in 0..<len {
                        let o = ptr + j * el
                        switch code {
                        case 1: d[j] = Int(bb[o])
                        case 2: d[j] = Int(Int8(bitPattern: bb[o]))
                        case 3: d[j] = Int(Int16(littleEndian: bb.loadUnaligned(fromByteOffset: o, as: Int16.self)))
                        case 8: d[j] = Int(UInt16(littleEndian: bb.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                        case 4: d[j] = Int(Int32(littleEndian: bb.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                        default: d[j] = Int(Int64(littleEndian: bb.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                        }
                    }
                    docs.append(d)
                }
            }
            return docs
        }
    }
}
