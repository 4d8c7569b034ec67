#!/usr/bin/env bash
# Seeds fuzz/corpus/{expr_parse,expr_eval} with the expressions (left of ` => `) of the expr
# crate's semantics cases, plus a few hub-style filters. The corpus itself is not committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cases="$here/../crates/expr/tests/cases"
for target in expr_parse expr_eval; do
    out="$here/corpus/$target"
    mkdir -p "$out"
    i=0
    {
        grep -hv '^#' "$cases"/*.txt | grep ' => ' | sed 's/ => .*$//'
        cat <<'HUB'
evt.Meta.log_type == 'ssh_failed-auth'
evt.Meta.log_type in ['http_access-log', 'http_error-log']
evt.Meta.http_path matches '\\.(php|asp|jsp)$'
any(File('bad.txt'), {evt.Parsed.http_user_agent contains #})
evt.Meta.service == 'http' && evt.Meta.http_status in ['404','403'] && evt.Parsed.verb in ['GET','HEAD']
RegexpInFile(evt.Parsed.http_user_agent, 'bad.regex')
LookupFile(evt.Meta.http_user_agent, 'bad.map')
FileMap('bad.map')
UnmarshalJSON(evt.Parsed.json, evt.Unmarshaled, 'j') == nil && evt.Unmarshaled.j.a.b[2] == 'x'
JsonExtract(evt.Parsed.json, 'a.b[0]')
ParseKV(evt.Parsed.kv, evt.Unmarshaled, 'kv')
XMLGetAttributeValue(evt.Parsed.xml, '/a/b', 'c')
ParseUri(evt.Parsed.request).a[0]
IpInRange(evt.Meta.source_ip, '203.0.113.0/24')
Sprintf('%s-%05d-%x', evt.Meta.service, 42, 255)
GetFromStash('cache', 'k') ?? 'none'
len(filter(Split(evt.Line.Raw, ' '), {# startsWith '"'})) > 0
let x = evt.Parsed.status; x == '404' ? upper(x) : lower(evt.Meta.log_type)
date(evt.Parsed.time_local, '02/Jan/2006:15:04:05 -0700').Year()
map(1..5, {#index * #}) | sum()
HUB
    } | sort -u | while IFS= read -r line; do
        [ -n "$line" ] || continue
        printf '%s' "$line" > "$out/seed-$(printf '%04d' "$i")"
        i=$((i + 1))
    done
    echo "$target: $(ls "$out" | wc -l) files in $out"
done
