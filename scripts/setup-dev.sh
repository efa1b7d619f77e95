#!/usr/bin/env sh
# Everything the test suite needs on a fresh machine, in one idempotent step:
#  - Graphviz (`dot`, for the docs' diagrams) and Chromium (the browser test), from the
#    distribution's packages, installed only when missing and only where we may (root);
#  - kadspec in strict editable mode (what lets mypy see the `kadspec` namespace) with the
#    development tools and the `ray` extra (the distributed explorer's tests run a local Ray);
#    py-libp2p, the reference node's host, is a dependency of kadspec itself;
#  - js-libp2p for the interop tests, at the exact versions of the js-libp2p adapter's
#    package-lock.json, where npm exists (re-installed only when that lock file changes).
set -eu
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

if ! command -v dot >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz chromium >/dev/null
  else
    echo "setup-dev: install Graphviz and Chromium with your package manager (not root or no apt-get here)" >&2
  fi
fi

python3 -m pip install -q -e '.[dev,ray]' --config-settings editable_mode=strict

JS_ADAPTER=conformance/adapters/js-libp2p
if command -v npm >/dev/null 2>&1 &&
  ! cmp -s "$JS_ADAPTER/package-lock.json" "$JS_ADAPTER/node_modules/.kadspec-lock.json"; then
  (cd "$JS_ADAPTER" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
    cp package-lock.json node_modules/.kadspec-lock.json)
fi
