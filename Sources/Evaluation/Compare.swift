// Compare: accuracy across checkpoints and shot counts, from the results.json files `turing eval`
// writes (lm-eval's shape), as a Markdown table and an SVG plot (metric against shots, one line per
// checkpoint, one panel per task). Reading is strict: a file that is not a results.json is an error
// naming it.

import Foundation

public struct ComparedRun: Sendable {
    public var name: String                                     // checkpoint (or the file's folder)
    public var values: [String: [Int: (Double, Double?)]]       // task -> shots -> (value, stderr)
}

public enum Compare {
    /// Load `metric` from each results.json (a file, or a folder holding one).
    public static func load(_ paths: [String], metric: String) throws -> [ComparedRun] {
        try paths.map { p in
            var url = URL(fileURLWithPath: p)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue { url.appendPathComponent("results.json") }
            guard let data = FileManager.default.contents(atPath: url.path),
                  let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let results = root["results"] as? [String: Any], let nshot = root["n-shot"] as? [String: Any] else {
                throw EvaluationError("\(url.path): not a results.json written by `turing eval` (needs \"results\" and \"n-shot\")")
            }
            let cfg = root["config"] as? [String: Any]
            let ckpt = (cfg?["checkpoint"] as? String).map { URL(fileURLWithPath: $0).lastPathComponent } ?? url.deletingLastPathComponent().lastPathComponent
            var values: [String: [Int: (Double, Double?)]] = [:]
            for (key, any) in results {
                guard let m = any as? [String: Any], let v = m["\(metric),none"] as? Double else { continue }
                let task = (m["alias"] as? String) ?? key
                let shots = (nshot[key] as? Int) ?? 0
                values[task, default: [:]][shots] = (v, m["\(metric)_stderr,none"] as? Double)
            }
            return ComparedRun(name: ckpt, values: values)
        }
    }

    public static func table(_ runs: [ComparedRun], metric: String) -> String {
        let tasks = Set(runs.flatMap { $0.values.keys }).sorted()
        var out = "| task | shots | " + runs.map(\.name).joined(separator: " | ") + " |\n"
        out += "|---|---:|" + String(repeating: "---:|", count: runs.count) + "\n"
        for t in tasks {
            let shots = Set(runs.flatMap { $0.values[t]?.keys.map { $0 } ?? [] }).sorted()
            for k in shots {
                let cells = runs.map { r -> String in
                    guard let (v, e) = r.values[t]?[k] else { return "-" }
                    return e.map { String(format: "%.4f ± %.4f", v, $0) } ?? String(format: "%.4f", v)
                }
                out += "| \(t) | \(k) | " + cells.joined(separator: " | ") + " |\n"
            }
        }
        return out + "\n\(metric) per task and shot count; ± is lm-eval's standard error.\n"
    }

    /// One panel per task: metric (y) against shots (x), a polyline per checkpoint.
    public static func svg(_ runs: [ComparedRun], metric: String) -> String {
        let tasks = Set(runs.flatMap { $0.values.keys }).sorted()
        let pw = 260.0, ph = 180.0, pad = 40.0, cols = max(1, min(3, tasks.count))
        let rows = (tasks.count + cols - 1) / cols
        let W = Double(cols) * (pw + pad) + pad, H = Double(rows) * (ph + pad * 1.5) + pad + 20 * Double(runs.count)
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(H))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (i, t) in tasks.enumerated() {
            let x0 = pad + Double(i % cols) * (pw + pad), y0 = pad + Double(i / cols) * (ph + pad * 1.5)
            let shots = Set(runs.flatMap { $0.values[t]?.keys.map { $0 } ?? [] }).sorted()
            let vals = runs.flatMap { r in shots.compactMap { r.values[t]?[$0]?.0 } }
            let lo = min(0, vals.min() ?? 0), hi = max(1e-9, vals.max() ?? 1)
            let top = hi <= 1 && lo >= 0 ? 1.0 : hi
            func px(_ k: Int) -> Double { shots.count < 2 ? x0 + pw / 2 : x0 + pw * Double(shots.firstIndex(of: k)!) / Double(shots.count - 1) }
            func py(_ v: Double) -> Double { y0 + ph - ph * (v - lo) / max(top - lo, 1e-12) }
            s += "<text x=\"\(x0)\" y=\"\(y0 - 8)\" font-weight=\"bold\">\(t) (\(metric))</text>\n"
            s += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#999\"/>\n"
            for f in [0.0, 0.5, 1.0] {
                let v = lo + f * (top - lo)
                s += "<text x=\"\(x0 - 4)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(String(format: "%.2f", v))</text>\n"
            }
            for k in shots { s += "<text x=\"\(px(k))\" y=\"\(y0 + ph + 14)\" text-anchor=\"middle\">\(k)-shot</text>\n" }
            for (j, r) in runs.enumerated() {
                let pts = shots.compactMap { k in r.values[t]?[k].map { "\(px(k)),\(py($0.0))" } }
                let c = colors[j % colors.count]
                if pts.count > 1 { s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\"\(pts.joined(separator: " "))\"/>\n" }
                for p in pts { let xy = p.split(separator: ","); s += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(c)\"/>\n" }
            }
        }
        for (j, r) in runs.enumerated() {
            let y = Double(rows) * (ph + pad * 1.5) + pad + 20 * Double(j)
            s += "<rect x=\"\(pad)\" y=\"\(y - 9)\" width=\"12\" height=\"12\" fill=\"\(colors[j % colors.count])\"/><text x=\"\(pad + 18)\" y=\"\(y + 1)\">\(r.name)</text>\n"
        }
        return s + "</svg>\n"
    }
}
