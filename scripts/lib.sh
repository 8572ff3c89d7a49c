# Shared by scripts/*: paths, tool locations and defaults. Sourced, not run.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.settle"
FOUNDRY_BIN_DIRS="$ROOT/node_modules/@foundry-rs/forge-linux-amd64/bin:$ROOT/node_modules/@foundry-rs/anvil-linux-amd64/bin:$ROOT/node_modules/@foundry-rs/cast-linux-amd64/bin"
export PATH="$FOUNDRY_BIN_DIRS:$HOME/.cargo/bin:$PATH"
export SETTLE_DATABASE_URL="${SETTLE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export SETTLE_PKCS11_MODULE="${SETTLE_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
# The development token's PINs (a local SoftHSM2 token for ./scripts/dev; never a production secret).
SETTLE_DEV_PIN="${SETTLE_DEV_PIN:-1234}"
SETTLE_DEV_SO_PIN="${SETTLE_DEV_SO_PIN:-12345678}"

say() { printf 'settle: %s\n' "$*"; }
die() { printf 'settle: error: %s\n' "$*" >&2; exit 1; }

# Host and port of a postgres:// URL (defaults 127.0.0.1:5432).
pg_host() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; echo "${u%%:*}"; }
pg_port() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; [[ "$u" == *:* ]] && echo "${u##*:}" || echo 5432; }
pg_answers() { pg_isready -q -h "$(pg_host "$1")" -p "$(pg_port "$1")" >/dev/null 2>&1; }
