#!/usr/bin/env python3
"""Lists the public API of secondfactor from rustdoc's JSON output, one item per line.

Usage: scripts/public-api.sh (builds the JSON with every feature, then runs this).
Walks the crate from its root the way a user can name things: public modules, the
items in them and what they re-export, and the inherent and trait methods of public
types. Items marked #[doc(hidden)] are left out (they carry no API promise).
"""
import json
import sys


def main(path):
    with open(path) as f:
        doc = json.load(f)
    index = doc["index"]
    root = doc["root"]
    out = set()
    seen = set()

    def hidden(item):
        attrs = item.get("attrs") or []
        for a in attrs:
            s = a if isinstance(a, str) else json.dumps(a)
            if "hidden" in s and "doc" in s:
                return True
        return False

    def kind_of(item):
        inner = item.get("inner") or {}
        return next(iter(inner), "?") if isinstance(inner, dict) else str(inner)

    def is_public(item):
        return item.get("visibility") == "public"

    def walk(item_id, prefix):
        item = index.get(str(item_id))
        if item is None or hidden(item):
            return
        kind = kind_of(item)
        inner = item["inner"][kind] if isinstance(item.get("inner"), dict) else {}
        if kind == "use":
            target = inner.get("id")
            if target is None:
                return
            if inner.get("is_glob"):
                t = index.get(str(target))
                if t and kind_of(t) == "module":
                    for child in t["inner"]["module"]["items"]:
                        c = index.get(str(child))
                        if c and is_public(c):
                            walk(child, prefix)
                return
            t = index.get(str(target))
            if t is None:
                return
            walk_named(target, prefix + [inner["name"]])
            return
        name = item.get("name")
        if name is None:
            return
        walk_named(item_id, prefix + [name])

    def walk_named(item_id, path):
        item = index.get(str(item_id))
        if item is None or hidden(item):
            return
        kind = kind_of(item)
        inner = item["inner"][kind]
        key = (str(item_id), "::".join(path))
        if key in seen:
            return
        seen.add(key)
        out.add(f"{kind} {'::'.join(path)}")
        if kind == "module":
            for child in inner["items"]:
                c = index.get(str(child))
                if c and is_public(c):
                    walk(child, path)
        elif kind in ("struct", "enum", "union", "trait"):
            if kind == "enum":
                for v in inner.get("variants", []):
                    vi = index.get(str(v))
                    if vi and not hidden(vi):
                        out.add(f"variant {'::'.join(path + [vi['name']])}")
            if kind == "struct":
                k = inner.get("kind") or {}
                fields = []
                if isinstance(k, dict):
                    if "plain" in k:
                        fields = k["plain"].get("fields", [])
                    elif "tuple" in k:
                        fields = [x for x in k["tuple"] if x is not None]
                for fid in fields:
                    fi = index.get(str(fid))
                    if fi and is_public(fi) and not hidden(fi):
                        out.add(f"field {'::'.join(path + [fi['name']])}")
            if kind == "trait":
                for m in inner.get("items", []):
                    mi = index.get(str(m))
                    if mi and not hidden(mi):
                        out.add(f"trait-{kind_of(mi)} {'::'.join(path + [mi['name']])}")
                return
            for imp in inner.get("impls", []):
                ii = index.get(str(imp))
                if ii is None:
                    continue
                idata = ii["inner"]["impl"]
                if idata.get("trait") is not None or idata.get("is_synthetic") or idata.get("blanket_impl"):
                    continue
                for m in idata.get("items", []):
                    mi = index.get(str(m))
                    if mi and is_public(mi) and not hidden(mi):
                        out.add(f"{kind_of(mi)} {'::'.join(path + [mi['name']])}")

    walk_named(root, [index[str(root)]["name"]])
    for line in sorted(out):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
