#!/usr/bin/env sh
# Everything the test suite needs on a fresh machine, in one idempotent step:
#  - Graphviz (`dot`, for the docs' diagrams) and Chromium (the browser test), from the
#    distribution's packages, installed only when missing and only where we may (root);
#  - kadspec in strict editable mode (what lets mypy see the `kadspec` namespace) with the
#    development tools and the `node` extra (py-libp2p, so the reference node's tests run
#    instead of skipping).
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

python3 -m pip install -q -e '.[dev,node]' --config-settings editable_mode=strict
