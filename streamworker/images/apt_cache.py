"""The shared deb cache: every image build reads it through hard links and adds to it.

A package several images use (a JDK, GCC) is downloaded once. Each build sees a private
directory of links (so parallel builds never share apt's lock) and what it downloaded is
moved into the cache afterwards by rename, which is atomic for concurrent readers.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def linked_archives(cache: Path, name: str) -> Path:
    """A fresh directory next to `cache` holding a hard link (else a copy) of each .deb."""
    archives = Path(tempfile.mkdtemp(prefix=f"apt-archives-{name}-", dir=cache.parent))
    for deb in cache.glob("*.deb"):
        try:
            (archives / deb.name).hardlink_to(deb)
        except OSError:
            shutil.copy2(deb, archives / deb.name)
    return archives


def merge_cache(incoming: Path, cache: Path) -> None:
    """Move newly downloaded .debs into the shared cache (a rename is atomic for readers)
    and drop the directory; the links `linked_archives` made are the cache's own files
    already and stay untouched."""
    if incoming.is_dir():
        for deb in incoming.glob("*.deb"):
            target = cache / deb.name
            if not _same_file(deb, target):
                deb.replace(target)
        shutil.rmtree(incoming, ignore_errors=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False
