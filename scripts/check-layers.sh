#!/bin/sh
# check-layers.sh — the layer rule of src/ (docs/internals/mgmt.md, "Layers"),
# checked on the #include lines, since they show the layering:
#   base → core → store → counters → service → http → cli
# 1. A file of one layer includes headers of its own layer or the ones before it,
#    never of a later one (a store file cannot include a service header).
# 2. src/http/ and src/cli/ reach data through services only: they include no
#    store/ or counters/ header.
# 3. The counters stay below the service layer's headers: no src/service/*.h
#    but the private app_int.h includes a counters/ header, so nothing above the
#    service layer sees a counter struct even through a service header.
# 4. A layer's private header (<layer>/*_int.h: service/app_int.h, the fields of
#    struct lk_app; store/store_int.h, a backend's ops; counters/counters_int.h,
#    the counter states) is included by that
#    layer's .c files only: not by its headers, not by another layer, tests or
#    benchmarks.
# Exits 1, naming each offending line, when any rule is broken.
# usage: scripts/check-layers.sh [ROOT]   (default: the repository this script is in)
set -eu

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

rank() {
    case $1 in
    base) echo 0 ;; core) echo 1 ;; store) echo 2 ;; counters) echo 3 ;;
    service) echo 4 ;; http) echo 5 ;; cli) echo 6 ;; *) echo -1 ;;
    esac
}

bad=0
fail() {
    echo "check-layers: $*" >&2
    bad=1
}

# Every quoted include under the given folders, as FILE:LINE:HEADER.
includes() {
    for d in "$@"; do
        [ -d "$d" ] || continue
        find "$d" -type f \( -name '*.c' -o -name '*.h' \) -exec \
            grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' {} + |
            sed 's/^\([^:]*:[0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/'
    done | sort
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
includes src > "$tmp"
while IFS=: read -r file line hdr; do
    layer=${file#src/}
    layer=${layer%%/*}
    to=${hdr%%/*}
    [ "$to" = "$hdr" ] && continue # a header of the same folder, named bare
    from_rank=$(rank "$layer")
    to_rank=$(rank "$to")
    [ "$to_rank" -lt 0 ] && continue # not one of ours (h2o, jansson ...)
    if [ "$to_rank" -gt "$from_rank" ]; then
        fail "$file:$line: $layer/ includes $hdr, a header of the later layer $to/"
    fi
    case $layer in
    http | cli)
        case $to in
        store | counters)
            fail "$file:$line: $layer/ includes $hdr: it reaches the store and the" \
                "counters through services only" ;;
        esac ;;
    esac
    case $file:$to in
    src/service/*_int.h:*) ;;
    src/service/*.h:counters)
        fail "$file:$line: includes $hdr: a service header must keep the counters" \
            "opaque to the layers above (forward-declare the struct)" ;;
    esac
    case $hdr in
    *_int.h)
        case $file in
        src/"$to"/*.c) ;;
        *) fail "$file:$line: includes $hdr, which is private to the .c files of src/$to/" ;;
        esac ;;
    esac
done < "$tmp"

# Outside src/ no file may include a private header at all.
includes tests bench > "$tmp"
while IFS=: read -r file line hdr; do
    case $hdr in
    *_int.h)
        fail "$file:$line: includes $hdr, which is private to the .c files of src/${hdr%%/*}/" ;;
    esac
done < "$tmp"

# Transactions are lk_store_txn's: nothing above the store begins or ends one itself.
grep -rnE 'lk_store_(begin|begin_background|commit|rollback)\(' src --include='*.c' \
    | grep -v '^src/store/' > "$tmp" || true
while IFS=: read -r file line _; do
    fail "$file:$line: calls lk_store_begin/commit/rollback: use lk_store_txn (docs/internals/mgmt.md)"
done < "$tmp"

if [ "$bad" -ne 0 ]; then
    echo "check-layers: the layers are base → core → store → counters → service → http → cli;" \
         "see docs/internals/mgmt.md" >&2
    exit 1
fi
echo "check-layers: ok"
