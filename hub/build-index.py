#!/usr/bin/env python3
"""Regenerate hub/.index.json from the item files of this hub.

Usage: python3 hub/build-index.py [--check]

The index has CrowdSec's layout: one object per item type (parsers, postoverflows,
scenarios, collections), each mapping an item name to its path, version, per-version
sha256 digest, description, base64 long description and content, author, labels,
references, and for collections the items they pull in. Rampart adds a "data" list to the
items that use data files (dest_file, type, source_url, and the file's path and digest in
this hub).

Every item is at version 0.1 for now. With --check the script exits with status 1 when the
index on disk differs from what it would write, without touching it.

Only the Python standard library is used, so the YAML reader below understands just the
subset our item files use: block mappings and sequences of plain or quoted scalars, flow
sequences of scalars, comments, and block scalars (| and >), which it skips over.
"""

import base64
import hashlib
import json
import os
import re
import sys

HUB = os.path.dirname(os.path.abspath(__file__))
AUTHOR = "rampart"
VERSION = "0.1"
TYPES = ("parsers", "postoverflows", "scenarios", "collections")
STAGED = ("parsers", "postoverflows")
DEPENDENCY_KEYS = ("parsers", "postoverflows", "scenarios", "collections")


# --------------------------------------------------------------------------------------
# minimal YAML subset reader
# --------------------------------------------------------------------------------------

def _strip_comment(line):
    """Drops a trailing '# comment' that is outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        body = text[1:-1]
        return body.replace("''", "'") if text[0] == "'" else body
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "~", ""):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _lines(text):
    out = []
    raw = text.splitlines()
    i = 0
    while i < len(raw):
        line = raw[i]
        if line.strip() == "---":
            raise ValueError("multi-document files are not supported by build-index.py")
        stripped = _strip_comment(line)
        if not stripped.strip():
            i += 1
            continue
        indent = len(stripped) - len(stripped.lstrip(" "))
        out.append((indent, stripped.strip()))
        # block scalar: skip its more-indented body, keep a placeholder value
        if re.search(r":\s*[|>][-+]?$", stripped):
            i += 1
            while i < len(raw) and (not raw[i].strip() or len(raw[i]) - len(raw[i].lstrip(" ")) > indent):
                i += 1
            continue
        i += 1
    return out


def _parse_block(lines, pos, indent):
    """Parses the block starting at lines[pos] whose lines sit at `indent`."""
    if lines[pos][1].startswith("- ") or lines[pos][1] == "-":
        seq = []
        while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("-"):
            item = lines[pos][1][1:].strip()
            if not item:
                value, pos = _parse_block(lines, pos + 1, lines[pos + 1][0])
                seq.append(value)
            elif re.match(r"^[\w.-]+:(\s|$)", item):
                # a mapping inside a sequence item: re-read it at the item's column
                sub_indent = indent + 2
                lines[pos] = (sub_indent, item)
                value, pos = _parse_block(lines, pos, sub_indent)
                seq.append(value)
            else:
                seq.append(_scalar(item))
                pos += 1
        return seq, pos
    mapping = {}
    while pos < len(lines) and lines[pos][0] == indent:
        m = re.match(r"^([\w.-]+):(?:\s+(.*))?$", lines[pos][1])
        if not m:
            raise ValueError("cannot read line: %r" % lines[pos][1])
        key, rest = m.group(1), (m.group(2) or "").strip()
        if rest and not re.fullmatch(r"[|>][-+]?", rest):
            mapping[key] = _scalar(rest)
            pos += 1
        elif rest:
            mapping[key] = "<block scalar>"
            pos += 1
        elif pos + 1 < len(lines) and lines[pos + 1][0] > indent:
            mapping[key], pos = _parse_block(lines, pos + 1, lines[pos + 1][0])
        elif pos + 1 < len(lines) and lines[pos + 1][0] == indent and lines[pos + 1][1].startswith("-"):
            mapping[key], pos = _parse_block(lines, pos + 1, indent)
        else:
            mapping[key] = None
            pos += 1
    return mapping, pos


def read_yaml(path):
    with open(path, encoding="utf-8") as f:
        lines = _lines(f.read())
    if not lines:
        return {}
    doc, pos = _parse_block(lines, 0, lines[0][0])
    if pos != len(lines):
        raise ValueError("%s: could not read past line %r" % (path, lines[pos][1]))
    return doc


# --------------------------------------------------------------------------------------
# index
# --------------------------------------------------------------------------------------

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def b64(data):
    return base64.b64encode(data).decode("ascii")


def leading_comment(path):
    """The comment block at the top of an item file, as Markdown paragraphs."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            out.append(line[1:].strip())
    return "\n".join(out).strip()


def long_description(path, name, doc):
    md = os.path.splitext(path)[0] + ".md"
    if os.path.exists(md):
        with open(md, "rb") as f:
            return b64(f.read())
    parts = ["## " + name, "", str(doc.get("description") or "")]
    comment = leading_comment(path)
    if comment:
        parts += ["", comment]
    return b64(("\n".join(parts) + "\n").encode("utf-8"))


def find_data_file(dest_file):
    data_root = os.path.join(HUB, "data")
    for root, _dirs, files in sorted(os.walk(data_root)):
        if dest_file in files:
            return os.path.join(root, dest_file)
    return None


def data_entries(path, doc):
    entries = []
    for d in doc.get("data") or []:
        entry = {
            "dest_file": d.get("dest_file"),
            "type": d.get("type"),
            "source_url": d.get("source_url"),
        }
        local = find_data_file(d.get("dest_file") or "")
        if local is None:
            raise SystemExit("%s: data file %s not found under hub/data/" % (path, d.get("dest_file")))
        entry["path"] = os.path.relpath(local, HUB)
        entry["digest"] = sha256(local)
        entries.append(entry)
    return entries


def item_files(kind):
    root = os.path.join(HUB, kind)
    if not os.path.isdir(root):
        return []
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for fn in files:
            if fn.endswith((".yaml", ".yml")):
                found.append(os.path.join(dirpath, fn))
    return sorted(found)


def build():
    index = {kind: {} for kind in TYPES}
    for kind in TYPES:
        for path in item_files(kind):
            rel = os.path.relpath(path, HUB)
            doc = read_yaml(path)
            name = doc.get("name")
            if not name:
                raise SystemExit("%s: no name" % rel)
            if name in index[kind]:
                raise SystemExit("%s: duplicate %s name %s" % (rel, kind, name))
            with open(path, "rb") as f:
                content = f.read()
            item = {
                "path": rel,
                "version": VERSION,
                "versions": {VERSION: {"digest": sha256(path), "deprecated": False}},
                "author": AUTHOR,
                "description": doc.get("description") or "",
                "long_description": long_description(path, name, doc),
                "content": b64(content),
                "labels": doc.get("labels"),
                "references": doc.get("references") or [],
            }
            if kind in STAGED:
                # parsers/<stage>/<author>/<file>
                item["stage"] = rel.split(os.sep)[1]
            if kind == "collections":
                for dep in DEPENDENCY_KEYS:
                    if doc.get(dep):
                        item[dep] = list(doc[dep])
            data = data_entries(rel, doc)
            if data:
                item["data"] = data
            index[kind][name] = item

    # every dependency of a collection must exist
    for name, coll in index["collections"].items():
        for dep in DEPENDENCY_KEYS:
            for sub in coll.get(dep, []):
                if sub not in index[dep]:
                    raise SystemExit("collection %s: unknown %s item %s" % (name, dep, sub))
    return index


def main():
    index = build()
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    target = os.path.join(HUB, ".index.json")
    if "--check" in sys.argv[1:]:
        current = open(target, encoding="utf-8").read() if os.path.exists(target) else ""
        if current != text:
            print("hub/.index.json is out of date: run python3 hub/build-index.py", file=sys.stderr)
            return 1
        print("hub/.index.json is up to date")
        return 0
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    counts = ", ".join("%d %s" % (len(index[k]), k) for k in TYPES)
    print("wrote %s (%s)" % (os.path.relpath(target), counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
