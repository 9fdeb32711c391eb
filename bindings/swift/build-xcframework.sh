#!/usr/bin/env bash
# On a Mac with Xcode: builds the Rust library for iOS devices and simulators and wraps it, with
# the generated header and module map, in SessionKitFFI.xcframework next to Package.swift.
# Not run on the project's Linux machines (no Xcode there).
set -euo pipefail
cd "$(dirname "$0")/../.."
for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  rustup target add "$target"
  cargo build --release --locked -p sessionkit-ffi --features sessionkit/mobile-crypto --target "$target"
done
cargo build --locked -p sessionkit-ffi --features bindgen
target/debug/uniffi-bindgen generate --library target/aarch64-apple-ios/release/libsessionkit_ffi.a \
  --language swift --out-dir bindings/swift/generated
cp bindings/swift/Events.swift bindings/swift/generated/
# Two crates carry UniFFI types (sessionkit-core's events and status, sessionkit-ffi's API): one
# header and module each, in one module map.
headers=$(mktemp -d)
cp bindings/swift/generated/sessionkit_ffiFFI.h bindings/swift/generated/sessionkit_coreFFI.h "$headers/"
cat bindings/swift/generated/sessionkit_ffiFFI.modulemap bindings/swift/generated/sessionkit_coreFFI.modulemap \
  > "$headers/module.modulemap"
lipo -create target/aarch64-apple-ios-sim/release/libsessionkit_ffi.a target/x86_64-apple-ios/release/libsessionkit_ffi.a \
  -output target/libsessionkit_ffi-sim.a
rm -rf bindings/swift/SessionKitFFI.xcframework
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libsessionkit_ffi.a -headers "$headers" \
  -library target/libsessionkit_ffi-sim.a -headers "$headers" \
  -output bindings/swift/SessionKitFFI.xcframework
