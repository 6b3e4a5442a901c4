"""Hostile image layers for confinement tests, crafted with Python's tarfile.

Each case is a function of `outside` (a directory next to the engine's data dir that holds a
canary file the layer tries to reach) returning the tar members of one layer. Push them with
`push_hostile(registry, repo, tag, members, compress)`, which uploads the raw blobs and an OCI
manifest through the registry API, so that no tool "fixes" the layer on the way.

A correct engine either rejects such a layer or writes everything inside the layer root;
`canary_intact(outside)` checks that nothing outside changed.
"""

from __future__ import annotations

from pathlib import Path

from .registry import OCI_LAYER_GZIP, OCI_LAYER_TAR, Registry, gzip_bytes, tar_bytes

CANARY = b"canary: must never change\n"


def make_outside(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "canary").write_bytes(CANARY)
    return d


def canary_intact(outside: Path) -> list[str]:
    """Problems found outside the root: a changed canary or any new file."""
    problems = []
    if (outside / "canary").read_bytes() != CANARY:
        problems.append("canary content changed")
    extra = sorted(p.name for p in outside.iterdir() if p.name != "canary")
    if extra:
        problems.append(f"new files outside the root: {extra}")
    return problems


def _up(n: int = 12) -> str:
    return "/".join([".."] * n)


# name -> (members(outside), what a correct engine does: "reject" or "confine")
def dotdot_name(outside: Path):
    return [{"name": f"{_up()}{outside}/evil-dotdot", "data": b"escaped\n"}]


def absolute_name(outside: Path):
    # Docker strips the leading "/": it must land inside the root, never at that host path.
    return [{"name": f"{outside}/evil-absolute", "data": b"escaped\n"}]


def symlink_write_through(outside: Path):
    return [
        {"name": "lnk", "type": "symlink", "target": str(outside)},
        {"name": "lnk/canary", "data": b"overwritten through a symlink\n"},
        {"name": "rel", "type": "symlink", "target": f"{_up()}{outside}"},
        {"name": "rel/evil-symlink", "data": b"escaped\n"},
    ]


def hardlink_out(outside: Path):
    return [{"name": "hl", "type": "hardlink", "target": f"{_up()}{outside}/canary"}]


def hardlink_absolute(outside: Path):
    return [{"name": "hl", "type": "hardlink", "target": f"{outside}/canary"}]


def hardlink_via_symlink(outside: Path):
    return [
        {"name": "dir", "type": "symlink", "target": str(outside)},
        {"name": "hl", "type": "hardlink", "target": "dir/canary"},
    ]


def dotdot_whiteout(outside: Path):
    return [{"name": "etc/.wh..", "data": b""}]


def whiteout_through_symlink(outside: Path):
    return [
        {"name": "lnk", "type": "symlink", "target": str(outside)},
        {"name": "lnk/.wh.canary"},
        {"name": "lnk/.wh..wh..opq"},
    ]


def forged_overlay_xattrs(outside: Path):
    # overlayfs trusts these; a layer must not be able to set them.
    return [{"name": "etc/", "type": "dir",
             "pax": {"SCHILY.xattr.trusted.overlay.redirect": str(outside),
                     "SCHILY.xattr.trusted.overlay.opaque": "y",
                     "SCHILY.xattr.user.overlay.metacopy": "",
                     "SCHILY.xattr.user.kept": "allowed"}},
            {"name": "etc/x", "data": b"x\n"}]


CASES = {
    "dotdot-name": (dotdot_name, "reject"),
    "absolute-name": (absolute_name, "confine"),
    "symlink-write-through": (symlink_write_through, "either"),
    "hardlink-out": (hardlink_out, "reject"),
    "hardlink-absolute": (hardlink_absolute, "reject"),
    "hardlink-via-symlink": (hardlink_via_symlink, "either"),
    "dotdot-whiteout": (dotdot_whiteout, "reject"),
    "whiteout-through-symlink": (whiteout_through_symlink, "either"),
    "forged-overlay-xattrs": (forged_overlay_xattrs, "confine"),
}


def bomb_layer(unpacked_bytes: int = 64 << 20) -> tuple[bytes, bytes]:
    """A gzip'd tar holding one file of zeros: small on the wire, big unpacked.
    Returns (blob, uncompressed tar)."""
    plain = tar_bytes([{"name": "zeros", "data": bytes(unpacked_bytes)}])
    return gzip_bytes(plain), plain


def push_hostile(reg: Registry, repo: str, tag: str, members: list[dict], compress: bool = True) -> dict:
    plain = tar_bytes(members)
    blob = gzip_bytes(plain) if compress else plain
    return reg.push_image(repo, tag, [(blob, plain, OCI_LAYER_GZIP if compress else OCI_LAYER_TAR)])
