#!/usr/bin/env python3
"""Keeps the man pages in step with the programs: every flag (long and short) that a program's
--help prints must appear in its man page source, every `conker` command and subcommand too, and
every conkerd.conf key must have an entry in conkerd.conf(5) that gives its current default and,
for a key with a fixed set of values, every value. Run by `meson test` (man-flags):

    check-man-flags.py MAN_DIR CONKERD CONKER CONKER_BROKER CONKER_SHIM CONF_EXAMPLE
"""
import re
import subprocess
import sys
from pathlib import Path

# A flag starts a word (after a blank, "(", "[", "|", "/" or ","), so that "RTMR0-3" or
# "dcap-qvl" are not flags, and is lower case, so that placeholders ("--KEY VALUE") are not.
FLAG = re.compile(r"(?<![\w\-])(--?[a-z][a-z0-9\-]*)")
NO_FLAG = re.compile(r"--\[no-\]([a-z][a-z0-9\-]*)")


def help_text(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    if r.returncode not in (0, 2) or not out.strip():
        sys.exit(f"{' '.join(argv)} exited {r.returncode}: {out}")
    return out


def flags(text):
    found = set(FLAG.findall(text))
    for name in NO_FLAG.findall(text):
        found |= {f"--{name}", f"--no-{name}"}
    return found


def in_page(page, word):
    return re.search(r"(?<![\w\-])" + re.escape(word) + r"(?![\w\-])", page) is not None


def check(name, page_path, wanted, missing):
    page = page_path.read_text()
    for w in sorted(wanted):
        if not in_page(page, w):
            missing.append(f"{page_path.name}: {name}: {w} is not documented")


def commands(text, header):
    """Names listed under `header` in a help text: indented lines 'name   description'."""
    names, inside = [], False
    for line in text.splitlines():
        if line.strip() == header:
            inside = True
            continue
        if inside:
            m = re.match(r"^  ([a-z][a-z0-9\-]*)\s{2,}", line)
            if m:
                names.append(m.group(1))
            elif line.strip() and not line.startswith("  "):
                inside = False
    return names


def main():
    man, conkerd, conker, broker, shim, example = sys.argv[1:7]
    man = Path(man)
    missing = []

    check("conkerd --help", man / "conkerd.8.scd",
          flags(help_text([conkerd, "--config", "/dev/null", "--help"])), missing)
    check("conker-broker --help", man / "conker-broker.8.scd", flags(help_text([broker, "--help"])), missing)
    # conker-shim has no --help: its usage line (on a bad option) lists every option.
    check("conker-shim usage", man / "conker-shim.8.scd", flags(help_text([shim, "--help"])) - {"--help"}, missing)

    top = help_text([conker, "--help"])
    cmds = commands(top, "commands:")
    if len(cmds) < 5:
        sys.exit(f"cannot find the command list in `conker --help`:\n{top}")
    page = man / "conker.1.scd"
    check("conker --help", page, flags(top) | set(cmds), missing)
    for c in cmds:
        text = help_text([conker, c, "--help"])
        check(f"conker {c} --help", page, flags(text), missing)
        for sub in commands(text, "subcommands:"):
            check(f"conker {c} {sub} --help", page, flags(help_text([conker, c, sub, "--help"])) | {sub},
                  missing)

    conf = (man / "conkerd.conf.5.scd").read_text()
    keys = []
    for block in Path(example).read_text().split("\n\n")[1:]:
        m = re.search(r"^# \((.*)\)\n#([a-z][a-z0-9\-]*) =(.*)$", block, re.M)
        if not m:
            sys.exit(f"unexpected block in {example}:\n{block}")
        hint, k, default = m.group(1), m.group(2), m.group(3).strip()
        keys.append(k)
        entry = re.search(r"^\*" + re.escape(k) + r"\*\n((?:\t.*\n?)+)", conf, re.M)
        if not entry:
            missing.append(f"conkerd.conf.5.scd: key {k} has no entry")
            continue
        text = entry.group(1).replace("\\_", "_").replace("\\*", "*")
        want = [f"Default: *{default}*" if default else "Default: empty"]
        if hint.startswith("one of the listed values: "):
            want += [f"*{v}*" for v in hint.split(": ", 1)[1].split()]
        for w in want:
            if w not in text:
                missing.append(f"conkerd.conf.5.scd: key {k}: \"{w}\" is not in its entry")

    if missing:
        print("\n".join(missing))
        print(f"{len(missing)} undocumented flag(s), command(s) or key(s): update man/*.scd "
              "(conkerd.conf(5)'s KEYS section: python3 scripts/man-conf-keys.py)")
        return 1
    print(f"man pages cover every flag, command and key ({len(keys)} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
