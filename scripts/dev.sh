#!/usr/bin/env bash
# Command 1: run the Worker locally. Installs what is missing, starts the Auth0 emulator on
# 127.0.0.1:8788 and `wrangler dev` on 127.0.0.1:8787 (real workerd, local KV), and prints a
# curl line that creates an invite. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "Created .dev.vars from .dev.vars.example"
fi
key=$(sed -n 's/^INVITE_API_KEYS=[^:]*:\([^,]*\).*/\1/p' .dev.vars | head -n1)

cargo build -q -p auth0-emulator
# Where cargo put it: CARGO_TARGET_DIR, when set, moves target/ (relative paths are from here).
emulator_bin="${CARGO_TARGET_DIR:-target}/debug/auth0-emulator"
EMULATOR_PORT="${EMULATOR_PORT:-8788}"
"$emulator_bin" --port "$EMULATOR_PORT" --domain emulator.local \
  --client-id dev-client-id --client-secret dev-client-secret &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true' EXIT
# Stop here if the emulator can't serve (a port in use, say): the Worker would start anyway and
# answer every invite 502 after its deadline.
for i in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$EMULATOR_PORT/__emulator/users" >/dev/null 2>&1 && break
  if ! kill -0 "$emulator_pid" 2>/dev/null || [ "$i" = 50 ]; then
    echo "the Auth0 emulator did not start on 127.0.0.1:$EMULATOR_PORT (see above)" >&2
    exit 1
  fi
  sleep 0.2
done

(
  for _ in $(seq 1 300); do
    # Any answer means wrangler serves; a 503 lists the configuration's problems by name.
    status=$(curl -sS -o /tmp/auth0-invite-dev-healthz.json -w '%{http_code}' \
      http://127.0.0.1:8787/healthz 2>/dev/null || true)
    if [ "$status" = 503 ]; then
      echo "" >&2
      echo "The Worker is up, but its configuration is invalid (.dev.vars, wrangler.toml [vars]):" >&2
      cat /tmp/auth0-invite-dev-healthz.json >&2
      echo "" >&2
      echo "Fix them, then restart scripts/dev.sh (.dev.vars is read at start)." >&2
      exit 0
    fi
    if [ "$status" = 200 ]; then
      cat <<MSG

Ready. Create an invite:

  curl -sS http://127.0.0.1:8787/v1/invites \\
    -H 'Authorization: Bearer ${key:-dev-invite-key-change-me}' \\
    -H 'Content-Type: application/json' \\
    -d '{"email":"ada@example.com","name":"Ada Lovelace","roles":["beta-tester"]}'

Emulator state: curl -sS http://127.0.0.1:${EMULATOR_PORT}/__emulator/users

MSG
      exit 0
    fi
    sleep 1
  done
  echo "wrangler dev did not answer /healthz within 300 s" >&2
) &

export WORKER_BUILD_NO_OPT=1 WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
npx wrangler dev --local --ip 127.0.0.1 --port 8787 --show-interactive-dev-session=false
