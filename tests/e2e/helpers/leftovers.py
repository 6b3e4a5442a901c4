"""What a task can leave behind on the host, for the tests that say it left nothing: files
holding a byte string, and a task's network."""
import os
import subprocess
from pathlib import Path


def grep_tree(root: Path, needle: bytes) -> list[str]:
    """The regular files below root (symlinks not followed) that contain needle."""
    hits = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as fh:
                    if needle in fh.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


def network_of(d, port):
    """What a task's network leaves on the host: netns files, the published port in the table,
    per-container net state files."""
    found = []
    ns_dir = d.dir / "netns"
    if ns_dir.is_dir() and any(ns_dir.iterdir()):
        found.append("netns " + ",".join(p.name for p in ns_dir.iterdir()))
    rules = subprocess.run(["nft", "list", "table", "inet", d.table], capture_output=True, text=True).stdout
    if f"dport {port} " in rules:
        found.append("port rule")
    states = d.run_dir / "net" / "containers"
    if states.is_dir() and any(states.iterdir()):
        found.append("net state")
    return found
