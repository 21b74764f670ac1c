// turing compare: few-shot accuracy across checkpoints and shot counts, from `turing eval` results.

import ArgumentParser
import Foundation
import TensorCore
import Evaluation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compare", abstract: "Compare eval results across checkpoints and shot counts (table and SVG plot).")
    @Argument(help: "results.json files, or the folders `turing eval` wrote.") var results: [String]
    @Option(help: "Metric to compare.") var metric = "acc"
    @Option(help: "Write the SVG plot here.") var plot: String?

    func run() throws {
        let runs = try Compare.load(results, metric: metric)
        print(Compare.table(runs, metric: metric), terminator: "")
        if let plot {
            try writeFileAtomically(Data(Compare.svg(runs, metric: metric).utf8), to: URL(fileURLWithPath: plot))
            log("plot -> \(plot)")
        }
    }
}
