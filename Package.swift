// swift-tools-version:6.0
// Turing: evaluation and inference harness for Megatron-style GPT checkpoints.
import PackageDescription

let package = Package(
    name: "Turing",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "turing", targets: ["turing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),   // run-time ISA dispatch inside; no -march
        .target(name: "TensorCore", dependencies: ["CKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "Tokenizers"),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPIShim", dependencies: ["CMPI"]),
        .target(name: "Collectives", dependencies: ["TensorCore", "CMPIShim"]),
        .target(name: "Model", dependencies: ["TensorCore", "Collectives"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "Checkpoints", dependencies: ["TensorCore", "Model"],
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),   // bounds and overflow checks stay on: hostile files
        .target(name: "Engine", dependencies: ["TensorCore", "Collectives", "Model", "Tokenizers"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "Training", dependencies: ["TensorCore", "Collectives", "Model"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .systemLibrary(name: "CBZip2", path: "Sources/CBZip2", providers: [.apt(["libbz2-dev"])]),
        .target(name: "Tasks", dependencies: ["CBZip2", .product(name: "Yams", package: "Yams")]),
        .target(name: "Evaluation", dependencies: ["Tasks", "Engine", "Model", "Tokenizers"]),
        .target(name: "Serving", dependencies: ["Engine", "Model", "Tokenizers", "Evaluation", "TensorCore", "Collectives",
                                                .product(name: "Hummingbird", package: "hummingbird")]),
        .executableTarget(name: "turing", dependencies: [
            "TensorCore", "Collectives", "Model", "Checkpoints", "Tokenizers", "Engine", "Training", "Tasks", "Evaluation", "Serving",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "CKernels"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "TensorCore"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Model", "TensorCore"]),
        .testTarget(name: "CLITests", dependencies: ["turing"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Model", "TensorCore", "Checkpoints"]),
        .testTarget(name: "TasksTests", dependencies: ["Tasks"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Tasks", "Engine", "Checkpoints", "Model", "Tokenizers"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Engine", "Checkpoints", "Model", "Tokenizers", "Evaluation",
                                                         .product(name: "Hummingbird", package: "hummingbird"),
                                                         .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Checkpoints", "Model", "Tokenizers", "TensorCore",
                                                        .product(name: "PropertyBased", package: "swift-property-based")]),
    ],
    swiftLanguageModes: [.v5]
)
