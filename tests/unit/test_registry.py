"""The language registry is data: check its shape, its conformance files and its hashes."""

from __future__ import annotations

import dataclasses
import io
import re
import tarfile
import tomllib
from pathlib import Path

import pytest

from streamworker.errors import UnknownLanguage
from streamworker.languages import images, mirror
from streamworker.languages.registry import (
    REGISTRY_PATH,
    Language,
    expand,
    get_language,
    load_registry,
)
from streamworker.sandbox.helper import HELPER_PATH
from streamworker.settings import LIMIT_NAMES, Settings

CONFORMANCE = REGISTRY_PATH.with_name("conformance")
REQUIRED = [
    *("python", "javascript", "typescript", "c", "cpp", "java", "go", "rust", "ruby", "php"),
    *("perl", "bash", "lua", "csharp", "kotlin", "haskell", "pascal", "fortran", "ocaml", "r"),
    "scala",
]
LANGS = list(load_registry().values())


def test_registry_has_the_required_languages() -> None:
    assert len(LANGS) >= 20
    assert set(REQUIRED) <= set(load_registry())


def test_unknown_language_names_the_known_ones() -> None:
    with pytest.raises(UnknownLanguage, match="python"):
        get_language("cobra")


@pytest.mark.parametrize("lang", LANGS, ids=lambda lang: lang.id)
def test_entry_is_complete(lang: Language) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9]*", lang.id)
    assert lang.name and lang.source_file and lang.run and lang.version_cmd
    assert "/" not in lang.source_file
    assert all(isinstance(p, str) and p for p in lang.packages)
    for cmd in (lang.run, lang.compile or (), lang.version_cmd):
        assert all(isinstance(part, str) for part in cmd)
        leftover = [p for p in expand(cmd, lang.source_file) if re.search(r"\{\w+\}", p)]
        assert not leftover, f"unknown placeholder in {cmd}"
    assert set(lang.limits_floor) <= set(LIMIT_NAMES)
    assert all(value > 0 for value in lang.limits_floor.values())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in lang.env.items())
    assert not {"PATH", "HOME", "LANG", "TMPDIR"} & set(lang.env), "set by the sandbox"


@pytest.mark.parametrize("lang", LANGS, ids=lambda lang: lang.id)
def test_conformance_cases(lang: Language) -> None:
    path = CONFORMANCE / f"{lang.id}.toml"
    assert path.is_file(), f"missing {path.name}"
    cases = {case["name"]: case for case in tomllib.loads(path.read_text())["case"]}
    expected = {"hello", "echo", "runtime_error"} | ({"compile_error"} if lang.compiled else set())
    assert set(cases) == expected
    assert cases["hello"]["expected_output"] == "Hello, World!\n"
    assert cases["hello"]["expected_status"] == "accepted"
    assert cases["echo"]["stdin"] == cases["echo"]["expected_output"] == "a b\nc\n"
    assert cases["runtime_error"]["expected_status"] == "runtime_error"
    if lang.compiled:
        assert cases["compile_error"]["expected_status"] == "compilation_error"
    assert all(case["source"].strip() for case in cases.values())


def test_no_orphan_conformance_files() -> None:
    assert {p.stem for p in CONFORMANCE.glob("*.toml")} == set(load_registry())


def test_expand_fills_entrypoint_and_stem() -> None:
    assert expand(("javac", "{entrypoint}"), "Main.java") == ["javac", "Main.java"]
    assert expand(("java", "-cp", ".", "{stem}"), "Main.java") == ["java", "-cp", ".", "Main"]


def test_recipe_hash_follows_what_goes_into_the_image() -> None:
    lang = get_language("python")
    assert dataclasses.replace(lang, packages=("python3", "python3-numpy")).recipe_hash() != (
        lang.recipe_hash()
    )
    assert dataclasses.replace(lang, setup=("true",)).recipe_hash() != lang.recipe_hash()
    assert dataclasses.replace(lang, run=("python3", "-O", "x")).recipe_hash() == (
        lang.recipe_hash()
    )
    whole = images.recipe_hash(lang, "bookworm", "helper-a")
    assert images.recipe_hash(lang, "bookworm", "helper-b") != whole
    assert images.recipe_hash(lang, "trixie", "helper-a") != whole
    assert images.base_hash(lang, "bookworm") == images.base_hash(lang, "bookworm")


def test_image_ref_prefers_the_entry_image() -> None:
    settings = Settings(image_prefix="reg.example/sw", debian_suite="bookworm")
    lang = get_language("c")
    assert images.image_ref(lang, settings) == "reg.example/sw/c:bookworm"
    own = dataclasses.replace(lang, image="mine/c:1")
    assert images.image_ref(own, settings) == "mine/c:1"


def test_mmdebstrap_argv() -> None:
    lang = dataclasses.replace(get_language("cpp"), setup=("echo hi > /etc/x",))
    argv = images.mmdebstrap_argv(
        lang,
        suite="bookworm",
        sources=["deb http://m/debian bookworm main"],
        helper_tar=Path("/d/helper.tar"),
        apt_cache=Path("/d/apt-cache"),
        apt_incoming=Path("/d/in"),
    )
    assert argv[0] == "mmdebstrap" and "--include=g++" in argv
    assert argv[-3:] == ["bookworm", "-", "deb http://m/debian bookworm main"]
    assert "--customize-hook=tar-in /d/helper.tar /" in argv
    assert """--customize-hook=chroot "$1" sh -c 'echo hi > /etc/x'""" in argv
    assert not any("--include" in a for a in images.mmdebstrap_argv(
        get_language("bash"), suite="bookworm", sources=[], helper_tar=Path("/h"),
        apt_cache=Path("/c"), apt_incoming=Path("/i"),
    ))  # fmt: skip


def test_helper_tarball_is_root_owned_and_executable(tmp_path: Path) -> None:
    binary = tmp_path / "sw-run-x"
    binary.write_bytes(b"\x7fELF-ish")
    with tarfile.open(fileobj=io.BytesIO(images.helper_tarball(binary))) as tar:
        member = tar.getmember(HELPER_PATH.lstrip("/"))
        assert (member.mode, member.uid, member.gid) == (0o755, 0, 0)
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"\x7fELF-ish"


DEB822 = """\
Types: deb deb-src
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.local/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.local/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main

Enabled: no
Types: deb
URIs: http://disabled.local/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# comment
deb [arch=amd64 signed-by=/k.gpg] http://mirror.local/debian bookworm main non-free
deb-src http://mirror.local/debian bookworm main
deb http://mirror.local/debian-security bookworm-security main  # trailing comment
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
"""


def test_parse_deb822() -> None:
    sources = mirror.parse_deb822(DEB822)
    assert sources[0] == mirror.AptSource(
        "http://mirror.local/debian", ("bookworm", "bookworm-updates"), ("main", "contrib")
    )
    assert [s.uri for s in sources] == [
        "http://mirror.local/debian",
        "http://mirror.local/debian-security",
        "https://deb.nodesource.com/node_20.x",
    ]


def test_parse_one_line() -> None:
    sources = mirror.parse_one_line(ONE_LINE)
    assert sources[0] == mirror.AptSource(
        "http://mirror.local/debian", ("bookworm",), ("main", "non-free")
    )
    assert [s.suites[0] for s in sources] == [
        "bookworm",
        "bookworm-security",
        "cloud-sdk-bookworm",
    ]


def test_source_lines_take_the_machines_mirror() -> None:
    lines = mirror.debian_source_lines("bookworm", sources=mirror.parse_deb822(DEB822))
    assert lines == [
        "deb http://mirror.local/debian bookworm main",
        "deb http://mirror.local/debian bookworm-updates main",
        "deb http://mirror.local/debian-security bookworm-security main",
    ]
    assert mirror.debian_source_lines("bookworm", sources=mirror.parse_one_line(ONE_LINE)) == [
        "deb http://mirror.local/debian bookworm main",
        "deb http://mirror.local/debian-security bookworm-security main",
    ]


def test_source_lines_for_another_release_reuse_the_mirror() -> None:
    lines = mirror.debian_source_lines("trixie", sources=mirror.parse_deb822(DEB822))
    assert lines == [
        "deb http://mirror.local/debian trixie main",
        "deb http://mirror.local/debian trixie-updates main",
        "deb http://mirror.local/debian-security trixie-security main",
    ]


def test_source_lines_override_and_fallback() -> None:
    assert mirror.debian_source_lines("bookworm", override="http://o/debian", sources=[]) == [
        "deb http://o/debian bookworm main",
        "deb http://o/debian bookworm-updates main",
    ]
    ubuntu = mirror.parse_one_line("deb http://archive.ubuntu.com/ubuntu jammy main\n")
    assert mirror.debian_source_lines("bookworm", sources=ubuntu)[0] == (
        f"deb {mirror.DEFAULT_MIRROR} bookworm main"
    )


def test_machine_sources_reads_both_formats_and_skips_disabled_files(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "x.list.disabled").write_text("deb http://no/debian sid main\n")
    uris = {s.uri for s in mirror.machine_sources(tmp_path)}
    assert "http://mirror.local/debian" in uris and "http://no/debian" not in uris
