"""What goes into a runtime image, computed without I/O: hashes, argv, tarballs, labels.

`mmdebstrap --variant=essential --include=<packages>` writes a root filesystem as a tar
stream that goes straight into Docker's import API. A hook copies in the trusted helper
`sw-run`. A second, metadata-only build step adds the labels (`finish_context`).

The recipe hash (packages, setup, suite, helper source, builder version) is stored as a
label: an image whose label matches is not rebuilt. When only the helper changed, the
helper is re-copied onto the imported base instead of bootstrapping Debian again; the
base hash (everything but the helper) tells the two cases apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from streamworker.languages.registry import Language
from streamworker.sandbox.helper import HELPER_PATH

BUILDER_VERSION = "1"
LABEL = "org.streamworker."
# Docs, man pages and translations are dead weight in a sandbox. Deleted after install
# rather than skipped with dpkg's path-exclude: that makes mmdebstrap pipe every
# essential package through a Python tar filter (+15 s per image) and breaks postinsts
# that expect /usr/share/man (openjdk's update-alternatives).
TRIM_HOOK = (
    'find "$1/usr/share/doc" -type f ! -name copyright -delete; '
    'rm -rf "$1/usr/share/man" "$1/usr/share/info" "$1/usr/share/locale" '
    '"$1/usr/share/lintian" "$1/var/log/"*.log "$1/var/cache/debconf/"*-old '
    '"$1/var/lib/dpkg/"*-old'
)

# Merged /usr by symlinks (as debootstrap does) instead of the usrmerge package, which
# would drag full Perl (~50 MB) into every image. Ships with mmdebstrap >= 1.3.
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"
# mmdebstrap's lines worth showing while building; hooks and checks are noise.
_STEP_LINES = tuple(
    f"I: {step}"
    for step in ("running apt-get update", "downloading", "extracting", "installing", "success")
)


def base_hash(lang: Language, suite: str) -> str:
    """Everything mmdebstrap installs; a change means bootstrapping Debian again."""
    return _hash(BUILDER_VERSION, suite, lang.recipe_hash())


def recipe_hash(lang: Language, suite: str, helper_hash: str) -> str:
    """The whole image: the base plus the helper binary."""
    return _hash(base_hash(lang, suite), helper_hash)


def _hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def mmdebstrap_argv(
    lang: Language,
    *,
    suite: str,
    sources: list[str],
    helper_tar: Path,
    apt_cache: Path,
    apt_incoming: Path,
) -> list[str]:
    """The mmdebstrap command writing `lang`'s root filesystem as a tar to stdout.

    Cached .debs are hard-linked in from `apt_cache` (copied across file systems) and the
    ones used are linked out to `apt_incoming`, so a package shared by several images (a
    compiler, a JDK) is downloaded once. mmdebstrap's cleanup keeps them out of the image.
    """
    archives = '"$1/var/cache/apt/archives"'
    argv = [
        "mmdebstrap",
        "--variant=essential",
        "--format=tar",
        "--skip=essential/unlink",
        f"--hook-dir={MERGED_USR_HOOKS}",
    ]
    if lang.packages:
        argv.append("--include=" + ",".join(lang.packages))
    argv += [
        f"--setup-hook=mkdir -p {archives}; {_link_debs(str(apt_cache), archives)}",
        f"--customize-hook=mkdir -p {shlex.quote(str(apt_incoming))}; "
        + _link_debs(archives, shlex.quote(str(apt_incoming))),
        f"--customize-hook=tar-in {helper_tar} /",
    ]
    argv += [f'--customize-hook=chroot "$1" sh -c {shlex.quote(cmd)}' for cmd in lang.setup]
    argv += [f"--customize-hook={TRIM_HOOK}", suite, "-", *sources]
    return argv


def _link_debs(src: str, dst: str) -> str:
    """Shell: hard-link (else copy) every .deb of `src` into `dst`; best effort."""
    src = src if src.startswith('"') else shlex.quote(src)
    return (
        f'for f in {src}/*.deb; do [ -e "$f" ] || continue; '
        f'ln -f "$f" {dst}/ 2>/dev/null || cp "$f" {dst}/; done; true'
    )


def is_step_line(line: str) -> bool:
    """Whether a line of mmdebstrap's log is worth showing while building."""
    return line.startswith(("W:", "E:")) or line.startswith(_STEP_LINES)


def helper_tarball(helper: bytes) -> bytes:
    """A tar holding the helper at its in-image path, root-owned, mode 0755."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("opt", "opt/streamworker"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(HELPER_PATH.lstrip("/"))
        info.size, info.mode = len(helper), 0o755
        tar.addfile(info, io.BytesIO(helper))
    return buf.getvalue()


def build_context(dockerfile: str, files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A `docker build` context: the Dockerfile plus `files` (name → (data, mode))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in {"Dockerfile": (dockerfile.encode(), 0o644), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def finish_context(base_id: str, labels: Mapping[str, str], helper: bytes | None) -> bytes:
    """The context that tags `base_id` plus labels (and a fresh helper): metadata only."""
    dockerfile = f"FROM {base_id}\n"
    files: dict[str, tuple[bytes, int]] = {}
    if helper is not None:
        dockerfile += f"COPY sw-run {HELPER_PATH}\n"
        files["sw-run"] = (helper, 0o755)
    # One LABEL instruction: the API's `labels` parameter makes one image per label.
    pairs = " ".join(
        f"{json.dumps(k)}={json.dumps(v, ensure_ascii=False)}" for k, v in labels.items()
    )
    dockerfile += f"LABEL {pairs}\n"
    return build_context(dockerfile, files)


def image_labels(
    lang: Language,
    *,
    suite: str,
    sources: list[str],
    base_id: str,
    helper_hash: str,
    version: str,
    built_at: datetime,
) -> dict[str, str]:
    """Every label of a finished image: what went in, from where, when, and its version."""
    return {
        LABEL + "language": lang.id,
        LABEL + "recipe-hash": recipe_hash(lang, suite, helper_hash),
        LABEL + "base-hash": base_hash(lang, suite),
        LABEL + "base-image": base_id,
        LABEL + "helper-hash": helper_hash,
        LABEL + "packages": ",".join(lang.packages),
        LABEL + "suite": suite,
        LABEL + "mirror": " ".join(dict.fromkeys(s.split()[1] for s in sources)),
        LABEL + "build-date": built_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        LABEL + "builder": BUILDER_VERSION,
        LABEL + "version": version,
    }


def labels_of(image: Mapping[str, Any] | None) -> dict[str, str]:
    """An inspected image's labels; none for a missing image."""
    return dict(((image or {}).get("Config") or {}).get("Labels") or {})


def is_up_to_date(lang: Language, labels: Mapping[str, str], want: str) -> bool:
    """A present image is current when it is the user's own or carries the recipe `want`."""
    return lang.image is not None or labels.get(LABEL + "recipe-hash") == want


def version_line(output: str) -> str:
    """The version `version_cmd` printed: its first line that is not a JVM's or a
    launcher's warning, cut to a label's reasonable length."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    first = next((line for line in lines if "warning" not in line.lower()), "")
    return first[:200]
