#!/usr/bin/env bash
# Sets up, builds and runs the main job once: sync -> status -> export.
# With LANGFUSE_BASE_URL, LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY set it harvests your real
# Langfuse (gently: 5 requests/s, 2 in flight); otherwise it starts the bundled fake Langfuse
# with demo data on 127.0.0.1. Everything it writes goes to ./demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build
bin=$PWD/build/lfharvest
mkdir -p demo
db=$PWD/demo/lfharvest.db

fake_pid=""
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [ -n "${LANGFUSE_BASE_URL:-${LANGFUSE_HOST:-}}" ] && [ -n "${LANGFUSE_PUBLIC_KEY:-}" ] &&
   [ -n "${LANGFUSE_SECRET_KEY:-}" ]; then
  echo "== harvesting ${LANGFUSE_BASE_URL:-$LANGFUSE_HOST}"
else
  echo "== no LANGFUSE_* variables: starting the bundled fake Langfuse with demo data"
  python3 tests/fake_langfuse/fake_langfuse.py --port 0 --demo > demo/fake.out 2> demo/fake.log &
  fake_pid=$!
  for _ in $(seq 50); do grep -q LISTENING demo/fake.out 2>/dev/null && break; sleep 0.1; done
  export LANGFUSE_BASE_URL
  LANGFUSE_BASE_URL=$(awk '/LISTENING/ {print $2}' demo/fake.out)
  export LANGFUSE_PUBLIC_KEY=pk-lf-demo LANGFUSE_SECRET_KEY=sk-lf-demo
fi

echo "== lfharvest sync"
"$bin" sync --db "$db" || { rc=$?; [ "$rc" -eq 75 ] || exit "$rc"; }
echo "== lfharvest status"
"$bin" status --db "$db"
if [ -n "$fake_pid" ]; then
  echo "== lfharvest export (the demo's \"Good\" annotations as OpenAI chat lines)"
  out=demo/good.jsonl
  "$bin" export --db "$db" --score-name quality --value Good --format openai-chat --out "$out"
else
  echo "== lfharvest export (every harvested annotation as JSON lines)"
  out=demo/annotations.jsonl
  "$bin" export --db "$db" --format jsonl --out "$out"
fi
echo "== the start of $out"
head -c 600 "$out"; echo
echo "== done: database $db, dataset $out"
