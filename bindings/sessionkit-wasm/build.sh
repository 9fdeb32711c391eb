#!/usr/bin/env bash
# Builds the npm package @sessionkit/web into bindings/sessionkit-wasm/pkg and reports its size.
# Needs: rustup (the pinned nightly below is installed with rust-src if missing) and
# wasm-bindgen-cli of the same version as the wasm-bindgen crate (scripts/test installs it);
# wasm-opt and esbuild come from npm (tools/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$here/pkg"

if [ ! -x "$here/tools/node_modules/.bin/wasm-opt" ] || [ ! -x "$here/tools/node_modules/.bin/esbuild" ]; then
  (cd "$here/tools" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Release build on a pinned nightly, which rebuilds std for size: panics abort at once, without
# the formatting and location text a panic message needs (nothing prints it in a browser), and
# `Debug` formatting compiles to nothing (no message of ours uses it). 11% smaller gzipped
# than the stable build (ARCHITECTURE.md, "Shipped size"). Every test of the crates runs on
# stable; this package's end-to-end tests run on this build.
. "$root/scripts/lib.sh"
ensure_wasm_release_toolchain
# The flags replace any RUSTFLAGS of the caller's (CARGO_ENCODED_RUSTFLAGS would win over them).
env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zfmt-debug=none -Zlocation-detail=none" \
  cargo "+$WASM_RELEASE_TOOLCHAIN" build --locked -p sessionkit-wasm --target wasm32-unknown-unknown --profile wasm \
  -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size --manifest-path "$root/Cargo.toml"
rm -rf "$out"
wasm-bindgen --target web --out-dir "$out" "$target_dir/wasm32-unknown-unknown/wasm/sessionkit_wasm.wasm"
# binaryen 132 from npm: Debian's 108 produces a module browsers refuse. The features are those
# rustc enables by default for wasm32-unknown-unknown.
"$here/tools/node_modules/.bin/wasm-opt" -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue "$out/sessionkit_wasm_bg.wasm" -o "$out/sessionkit_wasm_bg.wasm.opt"
mv "$out/sessionkit_wasm_bg.wasm.opt" "$out/sessionkit_wasm_bg.wasm"
# The JS as one minified module: index.js with wasm-bindgen's glue and its snippets inlined, so
# that a page fetches one script (not three in a chain) before the .wasm. The wasm is still found
# next to it (`new URL('sessionkit_wasm_bg.wasm', import.meta.url)` in the glue).
cp "$here/js/index.js" "$out/index.src.js"
# index.js starts the store's first read early (store/web.js's readEarly): it reaches that
# snippet, whose directory name wasm-bindgen derives from a hash, through this file.
store_js=$(cd "$out" && find snippets -path '*/src/store/web.js' 2>/dev/null || true)
if [ -z "$store_js" ] || [[ $store_js == *$'\n'* ]]; then
  echo "expected one store/web.js snippet under $out/snippets, found: ${store_js:-none}" >&2
  exit 1
fi
printf "export { dropEarlyRead, readEarly } from './%s';\n" "$store_js" >"$out/sessionkit_store.js"
"$here/tools/node_modules/.bin/esbuild" "$out/index.src.js" --bundle --format=esm --minify \
  --target=es2022 --legal-comments=none --log-level=warning --outfile="$out/index.js"
rm -rf "$out/index.src.js" "$out/sessionkit_store.js" "$out/sessionkit_wasm.js" "$out/sessionkit_wasm.d.ts" "$out/snippets"
cp "$here/js/index.d.ts" "$here/js/package.json" "$out/"
rm -f "$out/.gitignore" "$out/sessionkit_wasm_bg.wasm.d.ts"

# The size report: what an app ships (the .wasm plus every JS file the package loads), gzipped.
gz() { gzip -9c "$1" | wc -c; }
{
  printf '%-44s %10s %10s\n' file bytes gzipped
  total=0 total_gz=0
  while IFS= read -r file; do
    bytes=$(wc -c <"$file"); zipped=$(gz "$file")
    total=$((total + bytes)); total_gz=$((total_gz + zipped))
    printf '%-44s %10d %10d\n' "${file#"$out"/}" "$bytes" "$zipped"
  done < <(find "$out" -type f \( -name '*.wasm' -o -name '*.js' \) | sort)
  printf '%-44s %10d %10d\n' total "$total" "$total_gz"
} | tee "$out/size.txt"
