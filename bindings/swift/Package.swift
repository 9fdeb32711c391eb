// swift-tools-version:5.9
// SessionKit for iOS and macOS apps. The sources come from the Rust library via UniFFI:
//   scripts/kotlin-test generates them into bindings/swift/generated (CI does this on every run);
//   on a Mac, build the XCFramework as README.md ("iOS (Swift)") describes, then add this package.
// There is no Swift toolchain on the project's machines: this package is not compiled there.
import PackageDescription

let package = Package(
    name: "SessionKit",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "SessionKit", targets: ["SessionKit"]),
    ],
    targets: [
        // The Rust library for device and simulator, built by `scripts/build-xcframework` on a Mac.
        .binaryTarget(name: "sessionkit_ffiFFI", path: "SessionKitFFI.xcframework"),
        // From bindings/swift/generated: the API (sessionkit_ffi.swift), the events and status
        // (sessionkit_core.swift: the core's own types) and the AsyncStream of events (Events.swift).
        .target(name: "SessionKit", dependencies: ["sessionkit_ffiFFI"], path: "generated",
                sources: ["sessionkit_ffi.swift", "sessionkit_core.swift", "Events.swift"]),
    ]
)
