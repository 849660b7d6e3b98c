"""The shared deb cache: private link directories in, new downloads merged back."""

from __future__ import annotations

from pathlib import Path

from streamworker.images.apt_cache import linked_archives, merge_cache


def test_a_build_sees_links_and_only_its_downloads_move_into_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "apt-cache"
    cache.mkdir()
    (cache / "gcc.deb").write_bytes(b"gcc")
    archives = linked_archives(cache, "c")
    assert archives.parent == tmp_path and archives != cache
    linked = archives / "gcc.deb"
    assert linked.samefile(cache / "gcc.deb"), "a hard link, not a copy"
    cached_inode = (cache / "gcc.deb").stat().st_ino

    (archives / "libc.deb").write_bytes(b"libc")  # what apt downloaded in this build
    (archives / "partial").mkdir()  # apt's own leftovers go with the directory
    merge_cache(archives, cache)

    assert sorted(p.name for p in cache.iterdir()) == ["gcc.deb", "libc.deb"]
    assert (cache / "gcc.deb").stat().st_ino == cached_inode, "the linked file was left alone"
    assert (cache / "libc.deb").read_bytes() == b"libc"
    assert not archives.exists()


def test_a_redownloaded_package_replaces_the_cached_one(tmp_path: Path) -> None:
    cache = tmp_path / "apt-cache"
    cache.mkdir()
    (cache / "gcc.deb").write_bytes(b"truncated")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "gcc.deb").write_bytes(b"gcc, whole")  # a different file of the same name
    merge_cache(incoming, cache)
    assert (cache / "gcc.deb").read_bytes() == b"gcc, whole"


def test_merging_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "apt-cache"
    cache.mkdir()
    merge_cache(tmp_path / "never-made", cache)
    assert list(cache.iterdir()) == []
