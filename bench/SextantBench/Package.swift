// swift-tools-version:6.1
//
// sextant-bench — the benchmark driver for Sextant. A separate package so the library's own package
// carries no benchmark code; it depends on the library by path. Build (release, own scratch path):
//
//   swift build -c release --package-path bench/SextantBench --scratch-path .build-bench-pkg
//
// Run through bench/run.sh, which builds it, prepares the data and runs the peers side by side.

import PackageDescription

#if canImport(Foundation)
import Foundation
#endif

// The HNSW subcommands (Sources/sextant-bench/ANN.swift: `build`, `ann`) use the API of issue 3
// (IndexConfiguration, waitForIndexing, search(…, ef:)). They are compiled in unless SEXTANT_BENCH_HNSW=0 is
// in the environment (bench/run_ann.sh sets 0 only for a library without `IndexConfiguration`), so
// bench/run.sh and bench/run_ann.sh build the same binary in the shared scratch path.
#if canImport(Foundation)
let hnsw = ProcessInfo.processInfo.environment["SEXTANT_BENCH_HNSW"] != "0"
#else
let hnsw = true
#endif

let package = Package(
    name: "SextantBench",
    dependencies: [
        .package(name: "Sextant", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "sextant-bench",
            dependencies: [.product(name: "Sextant", package: "Sextant")],
            swiftSettings: hnsw ? [.define("SEXTANT_HNSW")] : []
        )
    ],
    swiftLanguageModes: [.v6]
)
