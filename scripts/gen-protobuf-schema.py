#!/usr/bin/env python3
"""Writes api/src/protobuf/k8s.schema: every protobuf message of Kubernetes' built-in
kinds, read from the Rust sources of the `k8s-pb` crate (prost structs), with each
field's JSON name taken from the `k8s-openapi` crate's serde code (prost snake-cases
proto names and loses acronyms: `podIPs` is `pod_i_ps`, `volumeID` is `volume_id`).

Usage: scripts/gen-protobuf-schema.py [OUTPUT]   (run from the repository root, after
`cargo fetch`, so that both crates are in ~/.cargo/registry/src).

The schema's lines (see api/src/protobuf/schema.rs for the reader):
    v <apiVersion> <package>              a group version and the package of its kinds
    k <apiVersion> <kind> <message>       a kind served as a resource
    m <message>                           a message; its fields follow
    f <tag> <jsonName> <type> [<message>] a field (jsonName @: inlined); type is s (string), i (int32),
                                          l (int64), b (bool), y (bytes), d (double),
                                          m (message), prefixed by * (repeated) or
                                          { (a map with string keys)
"""

import glob
import os
import re
import sys

HOME = os.path.expanduser("~")
REGISTRY = os.environ.get("CARGO_HOME", os.path.join(HOME, ".cargo")) + "/registry/src/*/"
K8S_PB = "k8s-pb-0.9.0"
K8S_OPENAPI = "k8s-openapi-0.29.0"

SCALARS = {"string": "s", "int32": "i", "int64": "l", "bool": "b", "bytes": "y", "double": "d",
           "message": "m"}


def find(crate):
    hits = sorted(glob.glob(REGISTRY + crate))
    if not hits:
        sys.exit(f"{crate} is not in {REGISTRY}: run `cargo fetch` first")
    return hits[0]


def norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def openapi_names():
    """JSON names by (module, lowercased struct), and all of them by normalized name."""
    per_struct = {}
    everywhere = {}
    root = find(K8S_OPENAPI) + "/src"
    for version in sorted(glob.glob(root + "/v1_*")):
        for path in glob.glob(version + "/**/*.rs", recursive=True):
            module = os.path.relpath(os.path.dirname(path), version).replace("/", ".")
            text = open(path, encoding="utf-8").read()
            structs = re.findall(r"^pub struct (\w+)", text, re.M)
            keys = re.findall(r'"([A-Za-z0-9_$\-]+)" => Field::Key_', text)
            for s in structs:
                d = per_struct.setdefault((module, s.lower()), {})
                for k in keys:
                    d[norm(k)] = k
            for k in keys:
                everywhere.setdefault(norm(k), set()).add(k)
    return per_struct, everywhere


def camel(snake):
    """prost's snake_case back to camelCase, when k8s-openapi does not know the name."""
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def resolve(module, path):
    segs = [s for s in path.split("::") if s]
    if segs[0] == "crate":
        return ".".join(segs[1:])
    base = module.split(".")
    while segs and segs[0] in ("super", "self"):
        if segs.pop(0) == "super":
            base.pop()
    return ".".join(base + segs)


def message_type(ty):
    """The message named in a field's Rust type (the last generic argument)."""
    ty = re.sub(r"\s+", "", ty)
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"):
        ty = ty.replace(wrapper, "")
    if ty.startswith("::prost::alloc::collections::BTreeMap<"):
        ty = ty[len("::prost::alloc::collections::BTreeMap<"):].split(",", 1)[1]
    return ty.rstrip(">").rstrip(",")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "api/src/protobuf/k8s.schema"
    per_struct, everywhere = openapi_names()
    root = find(K8S_PB) + "/src"
    messages = {}
    kinds = []
    versions = {}
    guessed = []
    for path in sorted(glob.glob(root + "/**/mod.rs", recursive=True)):
        module = os.path.relpath(os.path.dirname(path), root).replace("/", ".")
        lines = open(path, encoding="utf-8").read().split("\n")
        i = 0
        current = None
        while i < len(lines):
            line = lines[i]
            m = re.match(r"^pub struct (\w+) \{", line)
            if m:
                current = (module + "." + m.group(1), m.group(1))
                messages[current[0]] = []
            elif line == "}":
                current = None
            m = re.match(r"^impl crate::Resource for (\w+) \{", line)
            if m:
                block = "\n".join(lines[i:i + 8])
                av = re.search(r'API_VERSION: &\'static str = "([^"]+)"', block).group(1)
                kind = re.search(r'KIND: &\'static str = "([^"]+)"', block).group(1)
                kinds.append((av, kind, module + "." + m.group(1)))
                versions.setdefault(av, set()).add(module)
            m = re.match(r"^\s+#\[prost\((.*)\)\]$", line)
            if m and current:
                attr = m.group(1)
                decl = lines[i + 1].strip()
                j = i + 1
                while not decl.endswith(",") or decl.count("<") != decl.count(">"):
                    j += 1
                    decl = decl + " " + lines[j].strip()
                i = j
                fm = re.match(r"pub (?:r#)?(\w+): (.*),$", decl)
                if fm is None:
                    sys.exit(f"{path}:{i}: cannot read {decl!r}")
                field, ty = fm.group(1), fm.group(2)
                tag = re.search(r'tag = "(\d+)"', attr).group(1)
                mm = re.match(r'btree_map = "string, (\w+)"', attr)
                if mm:
                    code = "{" + SCALARS[mm.group(1)]
                else:
                    scalar = attr.split(",")[0].split("=")[0].strip()
                    code = SCALARS[scalar]
                    if "repeated" in attr:
                        code = "*" + code
                ref = resolve(module, message_type(ty)) if code.endswith("m") else ""
                names = per_struct.get((module, current[1].lower()))
                json = (names or {}).get(norm(field))
                if json is None and names and code == "m":
                    # A Go struct embedded with `json:",inline"`: a message of its
                    # own in protobuf, its fields at this level in JSON.
                    json = "@"
                if json is None:
                    known = everywhere.get(norm(field), set())
                    json = sorted(known)[0] if len(known) == 1 else camel(field)
                    if len(known) != 1:
                        guessed.append(f"{current[0]}.{field} -> {json}")
                messages[current[0]].append((int(tag), json, code, ref))
            i += 1
    with open(out, "w", encoding="utf-8") as f:
        f.write("# Generated by scripts/gen-protobuf-schema.py from k8s-pb 0.9.0 and k8s-openapi 0.29.0: do not edit.\n")
        for av in sorted(versions):
            for module in sorted(versions[av]):
                f.write(f"v {av} {module}\n")
        for av, kind, msg in sorted(kinds):
            f.write(f"k {av} {kind} {msg}\n")
        for name in sorted(messages):
            f.write(f"m {name}\n")
            for tag, json, code, ref in sorted(messages[name]):
                f.write(f"f {tag} {json} {code}{' ' + ref if ref else ''}\n".replace("  ", " "))
    for g in guessed:
        print("guessed:", g, file=sys.stderr)
    missing = {ref for fields in messages.values() for (_, _, _, ref) in fields if ref and ref not in messages}
    for ref in sorted(missing):
        print("unresolved message:", ref, file=sys.stderr)
    print(f"{len(messages)} messages, {sum(map(len, messages.values()))} fields, {len(kinds)} kinds -> {out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
