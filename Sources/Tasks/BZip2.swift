// BZip2: whole-file bzip2 decompression over libbz2's streaming API (BZ2_bzDecompress), for task data
// shipped compressed (HellaSwag's `hellaswag_val_full.txt.bz2`). Foundation cannot read bz2.
//
// Contract: `decompress` returns the concatenation of every bzip2 stream in the input (as `bunzip2` does
// for concatenated streams); a corrupt, truncated or non-bzip2 input is a TaskError naming the file and
// libbz2's error code, never a trap. Output is produced in 1 MiB steps; memory is the input plus the output.

import Foundation
import CBZip2

public enum BZip2 {
    public static func decompress(_ input: Data, file: String) throws -> Data {
        var out = Data()
        guard !input.isEmpty else { throw TaskError("\(file): empty file, expected bzip2 data") }
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        try input.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var offset = 0
            // one iteration per bzip2 stream
            while offset < raw.count {
                var strm = bz_stream()
                var rc = BZ2_bzDecompressInit(&strm, 0, 0)
                guard rc == BZ_OK else { throw TaskError("\(file): BZ2_bzDecompressInit failed (code \(rc))") }
                defer { BZ2_bzDecompressEnd(&strm) }
                let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                strm.next_in = UnsafeMutablePointer(mutating: base + offset)
                strm.avail_in = UInt32(min(raw.count - offset, Int(UInt32.max)))
                repeat {
                    let availBefore = strm.avail_in
                    rc = buffer.withUnsafeMutableBytes { b -> Int32 in
                        strm.next_out = b.baseAddress!.assumingMemoryBound(to: CChar.self)
                        strm.avail_out = UInt32(chunk)
                        return BZ2_bzDecompress(&strm)
                    }
                    guard rc == BZ_OK || rc == BZ_STREAM_END else {
                        throw TaskError("\(file): not valid bzip2 data at byte \(offset + Int(strm.total_in_lo32)) (libbz2 code \(rc): \(describe(rc)))")
                    }
                    let produced = chunk - Int(strm.avail_out)
                    out.append(contentsOf: buffer[0..<produced])
                    if rc == BZ_OK && produced == 0 && strm.avail_in == availBefore && strm.avail_in == 0 {
                        throw TaskError("\(file): truncated bzip2 data (the stream ends before its end-of-stream marker)")
                    }
                } while rc != BZ_STREAM_END
                offset += Int(strm.total_in_lo32) | (Int(strm.total_in_hi32) << 32)
            }
        }
        return out
    }

    static func describe(_ rc: Int32) -> String {
        switch rc {
        case BZ_DATA_ERROR: return "data error (corrupt input)"
        case BZ_DATA_ERROR_MAGIC: return "no bzip2 magic (not a .bz2 file)"
        case BZ_MEM_ERROR: return "out of memory"
        case BZ_PARAM_ERROR: return "parameter error"
        default: return "error"
        }
    }
}
