"""The language registry is data: check its shape, its conformance files, its names."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from streamworker.errors import UnknownLanguage
from streamworker.languages.registry import (
    REGISTRY_PATH,
    Language,
    expand,
    get_language,
    image_ref,
    load_registry,
)
from streamworker.limits import LIMIT_NAMES
from streamworker.settings import Settings

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
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", lang.id)
    assert lang.name and lang.source_file and lang.run and lang.version_cmd
    assert "/" not in lang.source_file
    assert all(isinstance(p, str) and p for p in lang.packages)
    for cmd in (lang.run, lang.compile or (), lang.version_cmd):
        assert all(isinstance(part, str) for part in cmd)
        filled = expand(cmd, lang.source_file, lang.heap_mb(256))
        leftover = [p for p in filled if re.search(r"\{\w+\}", p)]
        assert not leftover, f"unknown placeholder in {cmd}"
    assert set(lang.limits_floor) <= set(LIMIT_NAMES)
    assert all(value > 0 for value in lang.limits_floor.values())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in lang.env.items())
    assert not {"PATH", "HOME", "LANG", "TMPDIR"} & set(lang.env), "set by the sandbox"


@pytest.mark.parametrize("lang", LANGS, ids=lambda lang: lang.id)
def test_conformance_cases(lang: Language) -> None:
    path = CONFORMANCE / f"{lang.id}.toml"
    assert path.is_file(), f"missing {path.name}"
    data = tomllib.loads(path.read_text())
    cases = {case["name"]: case for case in data["case"]}
    expected = {"hello", "echo"} | ({"compile_error"} if lang.compiled else set())
    # A language that cannot fail at run time (plain text) says why instead of a case.
    if not data.get("no_runtime_error"):
        expected.add("runtime_error")
    # A runtime with a heap-exhaustion rule proves it maps to memory_limit_exceeded.
    if lang.oom_stderr:
        expected.add("memory_limit_exceeded")
        assert cases["memory_limit_exceeded"]["expected_status"] == "memory_limit_exceeded"
    assert set(cases) == expected
    assert cases["hello"]["expected_output"] == "Hello, World!\n"
    assert cases["hello"]["expected_status"] == "accepted"
    assert cases["echo"]["stdin"] == cases["echo"]["expected_output"] == "a b\nc\n"
    assert (
        cases.get("runtime_error", {"expected_status": "runtime_error"})["expected_status"]
        == "runtime_error"
    )
    if lang.compiled:
        assert cases["compile_error"]["expected_status"] == "compilation_error"
    assert all(case["source"].strip() for case in cases.values())


def test_no_orphan_conformance_files() -> None:
    assert {p.stem for p in CONFORMANCE.glob("*.toml")} == set(load_registry())


def test_expand_fills_entrypoint_and_stem() -> None:
    assert expand(("javac", "{entrypoint}"), "Main.java") == ["javac", "Main.java"]
    assert expand(("java", "-cp", ".", "{stem}"), "Main.java") == ["java", "-cp", ".", "Main"]


def test_expand_fills_the_heap_only_for_a_run() -> None:
    run = ("java", "-Xmx{heap_mb}m", "{stem}")
    assert expand(run, "Main.java", 384) == ["java", "-Xmx384m", "Main"]
    assert expand(run, "Main.java") == ["java", "-Xmx{heap_mb}m", "Main"]


def test_heap_follows_the_memory_limit() -> None:
    java = get_language("java")
    assert java.heap_reserve_mb > 0
    assert java.heap_mb(512) == 512 - java.heap_reserve_mb
    assert java.heap_mb(2048) == 2048 - java.heap_reserve_mb
    assert java.heap_mb(128) == 32  # never below a quarter: a small limit still starts
    assert get_language("python").heap_mb(256) == 256


@pytest.mark.parametrize("lang", [lang for lang in LANGS if lang.oom_stderr], ids=lambda x: x.id)
def test_heap_rules_size_the_heap_by_the_run(lang: Language) -> None:
    """A rule without a heap that follows the limit would still OOM-kill first."""
    assert lang.heap_reserve_mb > 0
    assert any("{heap_mb}" in part for part in lang.run)
    assert all(re.compile(pattern) for pattern in lang.oom_stderr)


def test_managed_runtimes_have_heap_rules() -> None:
    managed = {"java", "kotlin", "scala", "clojure", "groovy", "csharp", "javascript"}
    others = {"typescript", "php", "commonlisp", "pypy"}
    assert managed | others <= {lang.id for lang in LANGS if lang.oom_stderr}


def test_an_invalid_heap_rule_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text('[x]\nsource_file = "m"\nrun = ["m"]\noom_stderr = ["(unclosed"]\n')
    with pytest.raises(re.error):
        load_registry(path)


def test_image_ref_prefers_the_entry_image() -> None:
    settings = Settings(image_prefix="reg.example/sw", debian_suite="bookworm")
    lang = get_language("c")
    assert image_ref(lang, settings) == "reg.example/sw/c:bookworm"
    own = dataclasses.replace(lang, image="mine/c:1")
    assert image_ref(own, settings) == "mine/c:1"


def test_compat_names_are_unambiguous() -> None:
    """A Judge0 id or Piston name must lead to one language, or the gateway would guess."""
    judge0: dict[int, str] = {}
    piston: dict[str, str] = {}
    for lang in load_registry().values():
        assert lang.version, lang.id
        for judge0_id in lang.judge0_ids:
            assert judge0.setdefault(judge0_id, lang.id) == lang.id, judge0_id
        for name in (lang.piston, *lang.piston_aliases):
            assert piston.setdefault(name, lang.id) == lang.id, name
    assert judge0[71] == "python" and judge0[62] == "java" and judge0[54] == "cpp"
    assert piston["py"] == "python" and piston["c++"] == "cpp"
    assert judge0[75] == "c-clang" and judge0[76] == "cpp-clang" and judge0[43] == "plaintext"
    assert piston["pypy3"] == "pypy" and piston["sql"] == "sql" and piston["perl6"] == "raku"
