#!/usr/bin/env bash
# The package as a user gets it: `npm pack` (prepack compiles to dist/), install the tarball into an empty folder,
# then the installed `evaporate` command serves, ingests and queries, from compiled code with no tsx in sight.
# The native engine must load where a C++ compiler exists, and be reported missing in a sentence where it does not.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/evaporate-pack.XXXXXX")"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cd "$repo"
npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
tarball="$(ls "$work"/*.tgz)"
echo "pack: $(basename "$tarball"), $(du -k "$tarball" | cut -f1) KiB, $(tar tzf "$tarball" | wc -l) files"
if tar tzf "$tarball" | grep -E '^package/(src|test|fixtures|bench)/' >/dev/null; then echo "pack: sources or tests in the tarball" >&2; exit 1; fi

mkdir "$work/app" && cd "$work/app"
echo '{ "name": "evaporate-pack-check", "private": true }' >package.json
start=$(date +%s)
# The CUDA library is CI's own step (.ci/run); here the CPU engine is what a user without nvcc gets.
EVAPORATE_SKIP_CUDA="${EVAPORATE_SKIP_CUDA:-1}" npm install --no-audit --no-fund --loglevel=error "$tarball" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
echo "install: $(( $(date +%s) - start )) s"
grep -E '^\[evaporate\]' "$work/install.log" || true
if [ -e node_modules/tsx ]; then echo "install: tsx was installed; it should be a development dependency only" >&2; exit 1; fi

# The native engine: loaded, or a clean sentence saying why not.
engine="$(node --input-type=module -e "
  const m = await import('./node_modules/evaporate/dist/llm/local/addon.js');
  try { console.log('loaded, ' + m.loadAddon().defaultThreads + ' default threads'); } catch (e) { console.log('missing: ' + e.message); }")"
echo "native engine: $engine"
if command -v c++ >/dev/null 2>&1 && [[ "$engine" != loaded* ]]; then echo "native engine: a C++ compiler is here, but the engine did not build" >&2; exit 1; fi

export EVAPORATE_DB="$work/app/data/e.db"
port="$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")"
npx --no-install evaporate serve --port "$port" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { echo "serve: /health never answered" >&2; cat "$work/serve.log"; exit 1; }
echo "serve: $(head -1 "$work/serve.log")"

pages="$repo/fixtures/swde/book-christianbook/pages"
first() { node -e "let s = ''; process.stdin.on('data', (d) => (s += d)).on('end', () => console.log(JSON.parse(s).rows[0][0]))"; }
npx --no-install evaporate ingest books "$pages/0000.htm" "$pages/0001.htm" "$pages/0002.htm" "$repo/fixtures/ingest/report.pdf"
curl -fsS -F "file=@$pages/0003.htm" "http://127.0.0.1:$port/corpora/books/documents" >/dev/null
count="$(npx --no-install evaporate query "SELECT count(*) AS n FROM documents WHERE status = 'ready'" --json | first)"
[ "$count" = 5 ] || { echo "query: expected 5 ready documents (4 from the CLI, 1 over HTTP), got $count" >&2; exit 1; }
echo "ingest + query: 5 documents (HTML and PDF), 4 through the CLI and 1 through the server, counted by evaporate query"
npx --no-install evaporate documents list books | head -1 >/dev/null

# An extraction with no model: functions induced from three labels run in the sandbox (its worker and DOM realm
# come from dist/) and fill the unlabelled page.
npx --no-install evaporate label set books 0000.htm isbn_13 9781602600157 >/dev/null
npx --no-install evaporate label set books 0001.htm isbn_13 9781602600140 >/dev/null
npx --no-install evaporate label set books 0002.htm isbn_13 9781602600638 >/dev/null
env -u OPENAI_BASE_URL -u OPENAI_API_KEY -u EVAPORATE_MODEL npx --no-install evaporate extract books --attributes isbn_13 >/dev/null
isbn="$(npx --no-install evaporate query "SELECT t.isbn_13 FROM corpus_books_1 t JOIN documents d ON d.id = t._document_id WHERE d.filename = '0003.htm'" --json | first)"
[ "$isbn" = 9781400073979 ] || { echo "extract: expected ISBN 9781400073979 on the unlabelled page, got $isbn" >&2; exit 1; }
echo "extract (labels only, no model): the unlabelled page's isbn_13 is $isbn"

kill -TERM "$server"; wait "$server" || true; server=""
echo "pack-install: ok"
