#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/webapp/test_browser.py).
#
#   scripts/ensure_chromium.sh      # `make test` calls this before pytest
#
# Idempotent and quiet: does nothing when /usr/bin/chromium exists. Otherwise, when running as
# root on a system with apt-get, installs `chromium` and `chromium-driver`. When it cannot (not
# root, no apt, offline), it prints one warning and exits 0: the browser tests then skip.
# Playwright's own browser download (`playwright install`) is never used.
set -u

CHROMIUM="${MMRLHF_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

warn() {
    echo "ensure_chromium: $*; browser tests will be skipped" >&2
    exit 0
}

command -v apt-get >/dev/null 2>&1 || warn "no $CHROMIUM and no apt-get to install it"
[ "$(id -u)" -eq 0 ] || warn "no $CHROMIUM; run 'sudo apt-get install -y chromium chromium-driver'"

log="$(mktemp)"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    rm -f "$log"
    warn "apt-get could not install chromium"
fi
rm -f "$log"
[ -x "$CHROMIUM" ] || warn "chromium installed but $CHROMIUM is missing"
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
