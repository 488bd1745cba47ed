#!/usr/bin/env bash
# A headless browser for the dashboard's browser test.
#
#   scripts/browser.sh install
#       Installs Debian's chromium with apt-get when no Chromium or Chrome is
#       on PATH. Never fails: when it cannot install one it says why, and the
#       browser test skips with that reason printed.
#   scripts/browser.sh path
#       Prints the browser the test would use, or exits 1 when there is none.
set -euo pipefail

log() { printf 'browser: %s\n' "$*" >&2; }

find_browser() {
	local b p
	for b in chromium chromium-browser google-chrome-stable google-chrome; do
		if p=$(command -v "$b") && [[ -x $p ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

cmd_install() {
	local sudo=()
	find_browser >/dev/null && return 0
	if [[ $(id -u) -ne 0 ]]; then
		if ! command -v sudo >/dev/null; then
			log "no browser and not root (no sudo): the dashboard browser test will skip"
			return 0
		fi
		sudo=(sudo -n)
	fi
	if ! command -v apt-get >/dev/null; then
		log "no browser and no apt-get: the dashboard browser test will skip"
		return 0
	fi
	log "installing chromium (for the dashboard browser test)"
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
		! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
		log "installing chromium failed: the dashboard browser test will skip"
		return 0
	fi
	find_browser >/dev/null || log "chromium installed but not on PATH: the dashboard browser test will skip"
}

case ${1:-} in
install) cmd_install ;;
path) find_browser ;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
