#!/usr/bin/env python3
"""Rewrites the KEYS section of man/conkerd.conf.5.scd from src/conkerd/conkerd.conf.example
(itself `conkerd --print-config-example`), one entry per key: its help, the kind of value and
the default. Run it after adding or changing a key of conkerd's config table:

    python3 scripts/man-conf-keys.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src" / "conkerd" / "conkerd.conf.example"
PAGE = ROOT / "man" / "conkerd.conf.5.scd"


def esc(s: str) -> str:
    return s.replace("_", "\\_").replace("*", "\\*")


def value_kind(hint: str) -> str:
    if hint.startswith("number; "):
        return esc("a number, " + hint[len("number; "):])
    if hint.startswith("size in bytes"):
        return esc("a size in bytes (K, M, G or T suffix), " + hint.split("; ")[1])
    if hint.startswith("one of the listed values: "):
        return "one of " + ", ".join(f"*{esc(v)}*" for v in hint.split(": ", 1)[1].split())
    return {"absolute path": "an absolute path", "on or off": "*on* or *off*",
            "repeatable": "repeatable: give the key once per value"}.get(hint, esc(hint))


def entries() -> str:
    out = []
    for block in EXAMPLE.read_text().split("\n\n")[1:]:
        lines = block.strip().split("\n")
        help_, hint, kv = lines[0][2:], lines[1][3:-1], lines[2][1:]
        key, default = (x.strip() for x in kv.split(" =", 1))
        d = f"*{esc(default)}*" if default else "empty"
        out.append(f"*{key}*\n\t{esc(help_)}\n\tValue: {value_kind(hint)}. Default: {d}.\n")
    return "\n".join(out)


def main() -> int:
    page = PAGE.read_text()
    start = page.index("# KEYS\n\n") + len("# KEYS\n\n")
    end = page.index("\n# EXAMPLE")
    PAGE.write_text(page[:start] + entries() + page[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
