// swift-tools-version:6.1
//
// sextant-bench — the benchmark driver for Sextant. A separate package so the library's own package
// carries no benchmark code; it depends on the library by path. Build (release, own scratch path):
//
//   swift build -c release --package-path bench/SextantBench --scratch-path .build-bench-pkg
//
// Run through bench/run.sh, which builds it, prepares the data and runs the peers side by side.

import PackageDescription

let package = Package(
    name: "SextantBench",
    dependencies: [
        .package(name: "Sextant", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "sextant-bench",
            dependencies: [.product(name: "Sextant", package: "Sextant")]
        )
    ],
    swiftLanguageModes: [.v6]
)
