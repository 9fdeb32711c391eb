# Shared by scripts/test and scripts/demo: install what SessionKit's tests and demo need on a
# fresh Debian machine, and run a command inside a D-Bus session with an unlocked gnome-keyring.

step() { printf '\n==> %s\n' "$*"; }

# System packages: D-Bus + gnome-keyring (Secret Service), keyutils, util-linux's flock,
# OpenSSL and Node.js for the local OpenID provider (tests/idp).
ensure_system_packages() {
  local need=()
  command -v dbus-run-session >/dev/null || need+=(dbus)
  command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
  command -v keyctl >/dev/null || need+=(keyutils)
  command -v node >/dev/null || need+=(nodejs npm)
  command -v openssl >/dev/null || need+=(openssl)
  command -v flock >/dev/null || need+=(util-linux)
  # Keycloak's download, start-up check and configuration (scripts/keycloak-test).
  command -v curl >/dev/null || need+=(curl)
  command -v unzip >/dev/null || need+=(unzip)
  command -v python3 >/dev/null || need+=(python3)
  if ((${#need[@]})); then
    step "installing ${need[*]}"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
      echo "missing: ${need[*]} (install them, or run this as root on Debian)" >&2
      exit 1
    fi
  fi
}

# The local provider's npm packages, from the committed lock file.
ensure_provider_packages() {
  if [ ! -d tests/idp/node_modules/oidc-provider ] || [ tests/idp/package-lock.json -nt tests/idp/node_modules/.package-lock.json ]; then
    step "installing the local OpenID provider's packages (npm ci in tests/idp)"
    (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Runs "$@" in a fresh D-Bus session with an unlocked gnome-keyring and a fresh kernel session
# keyring; gnome-keyring's files go to a throwaway directory.
in_keyring_session() {
  local home
  home=$(mktemp -d)
  XDG_DATA_HOME="$home/data" XDG_CACHE_HOME="$home/cache" XDG_RUNTIME_DIR="$home/run" \
    bash -c 'mkdir -p "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR" &&
      exec dbus-run-session -- bash scripts/in-keyring-session "$@"' _ "$@" 2> >(grep -v 'Failed to set fd limit' >&2)
  local status=$?
  rm -rf "$home"
  return $status
}

# What the web package's build needs: the wasm32 target and wasm-bindgen-cli of exactly the
# wasm-bindgen crate's version (from Cargo.lock). (wasm-opt comes from npm, see build.sh.)
ensure_wasm_tools() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  ensure_wasm_release_toolchain
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    step "installing wasm-bindgen-cli $want (about 2 minutes)"
    # Not --locked: the registry here lacks one of its locked transitive versions.
    cargo install wasm-bindgen-cli --version "$want" --quiet
  fi
}

# The npm package's release build rebuilds std for size on a pinned nightly (see
# bindings/sessionkit-wasm/build.sh); the tests and every other build use stable.
WASM_RELEASE_TOOLCHAIN=nightly-2026-05-20
ensure_wasm_release_toolchain() {
  if ! rustup run "$WASM_RELEASE_TOOLCHAIN" rustc --print sysroot >/dev/null 2>&1 ||
    [ ! -d "$(rustup run "$WASM_RELEASE_TOOLCHAIN" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    step "installing $WASM_RELEASE_TOOLCHAIN with rust-src (the web package's release build)"
    rustup toolchain install "$WASM_RELEASE_TOOLCHAIN" --profile minimal --component rust-src
  fi
}

# What the browser tests need besides: Debian's Chromium and its chromedriver.
ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    step "installing chromium and chromium-driver"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
      echo "missing: chromium chromium-driver" >&2
      exit 1
    fi
  fi
}
