"""What goes into a runtime image, without Docker: hashes, argv, tarballs, labels, mirror."""

from __future__ import annotations

import dataclasses
import io
import json
import shlex
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from streamworker.images import mirror, recipe
from streamworker.languages.registry import get_language, load_registry
from streamworker.sandbox.helper import HELPER_PATH


def test_recipe_hash_follows_what_goes_into_the_image() -> None:
    lang = get_language("python")
    assert dataclasses.replace(lang, packages=("python3", "python3-numpy")).recipe_hash() != (
        lang.recipe_hash()
    )
    assert dataclasses.replace(lang, setup=("true",)).recipe_hash() != lang.recipe_hash()
    assert dataclasses.replace(lang, run=("python3", "-O", "x")).recipe_hash() == (
        lang.recipe_hash()
    )
    whole = recipe.recipe_hash(lang, "bookworm", "helper-a")
    assert recipe.recipe_hash(lang, "bookworm", "helper-b") != whole
    assert recipe.recipe_hash(lang, "trixie", "helper-a") != whole
    assert recipe.base_hash(lang, "bookworm") == recipe.base_hash(lang, "bookworm")


def test_base_mmdebstrap_argv() -> None:
    argv = recipe.base_mmdebstrap_argv(
        suite="bookworm",
        sources=["deb http://m/debian bookworm main"],
        apt_cache=Path("/d/apt-cache"),
        apt_incoming=Path("/d/in"),
    )
    assert argv[:2] == ["mmdebstrap", "--variant=essential"]
    assert "--include=apt" in argv
    assert argv[-3:] == ["bookworm", "-", "deb http://m/debian bookworm main"]
    assert any(a.startswith("--setup-hook=") and "/d/apt-cache/*.deb" in a for a in argv)
    assert any(a.startswith("--customize-hook=") and '"$1/usr/share/man"' in a for a in argv)


def test_install_script_installs_without_recommends_trims_and_drops_setuid() -> None:
    lang = dataclasses.replace(get_language("cpp"), setup=("echo 'hi' > /etc/x",))
    script = recipe.install_script(lang)
    lines = script.splitlines()
    assert lines[0] == "set -e"
    install = next(line for line in lines if line.startswith("apt-get install"))
    assert "--no-install-recommends" in install and install.endswith(" g++")
    setup = "sh -c " + shlex.quote("echo 'hi' > /etc/x")
    # Setup fails the build; trimming is best effort and comes after it.
    assert lines.index("set +e") > lines.index(setup)
    assert "chmod ug-s" in script and '"/usr/share/man"' in script
    assert lines[-1] == "echo 'I: success'"
    assert "apt-get install" not in recipe.install_script(get_language("bash"))


def test_install_script_quotes_hostile_package_names() -> None:
    lang = dataclasses.replace(get_language("bash"), packages=("x; rm -rf /",))
    assert "'x; rm -rf /'" in recipe.install_script(lang)


def test_the_shared_base_has_a_tag_no_language_can_take() -> None:
    ref = recipe.base_ref("streamworker-runtime", "bookworm")
    assert ref == "streamworker-runtime/debian-base:bookworm"
    assert all(lang_id != "debian-base" for lang_id in load_registry())
    assert recipe.debian_base_hash("bookworm") != recipe.debian_base_hash("trixie")


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


def test_finish_context_labels_in_one_instruction_and_copies_a_helper_only_when_given() -> None:
    labels = {"org.streamworker.version": 'Python 3.11 "x"', "org.streamworker.suite": "é"}
    with tarfile.open(fileobj=io.BytesIO(recipe.finish_context("sha256:ab", labels, None))) as tar:
        assert tar.getnames() == ["Dockerfile"]
        dockerfile = tar.extractfile("Dockerfile")
        assert dockerfile is not None
        lines = dockerfile.read().decode().splitlines()
    assert lines[0] == "FROM sha256:ab" and len(lines) == 2
    assert lines[1] == "LABEL " + " ".join(
        f"{json.dumps(k)}={json.dumps(v, ensure_ascii=False)}" for k, v in labels.items()
    )
    with_helper = recipe.finish_context("sha256:ab", labels, b"helper")
    with tarfile.open(fileobj=io.BytesIO(with_helper)) as tar:
        member = tar.getmember("sw-run")
        assert member.mode == 0o755
        dockerfile = tar.extractfile("Dockerfile")
        assert dockerfile is not None
        assert f"COPY sw-run {HELPER_PATH}" in dockerfile.read().decode()


def test_image_labels_carry_both_hashes_the_mirror_and_the_version() -> None:
    lang = get_language("python")
    labels = recipe.image_labels(
        lang,
        suite="bookworm",
        sources=["deb http://m/debian bookworm main", "deb http://m/debian bookworm-updates main"],
        base_id="sha256:base",
        helper_hash="h1",
        version="Python 3.11.2",
        built_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    label = recipe.LABEL
    assert labels[label + "recipe-hash"] == recipe.recipe_hash(lang, "bookworm", "h1")
    assert labels[label + "base-hash"] == recipe.base_hash(lang, "bookworm")
    assert labels[label + "mirror"] == "http://m/debian"
    assert labels[label + "build-date"] == "2026-01-02T03:04:05Z"
    assert labels[label + "packages"] == ",".join(lang.packages)
    assert labels[label + "version"] == "Python 3.11.2"
    assert labels[label + "builder"] == recipe.BUILDER_VERSION


def test_freshness_reads_the_recipe_label_and_trusts_a_users_own_image() -> None:
    lang = get_language("python")
    image = {"Config": {"Labels": {recipe.LABEL + "recipe-hash": "abc"}}}
    assert recipe.labels_of(image) == {recipe.LABEL + "recipe-hash": "abc"}
    assert recipe.labels_of(None) == {} == recipe.labels_of({"Config": {"Labels": None}})
    assert recipe.is_up_to_date(lang, recipe.labels_of(image), "abc")
    assert not recipe.is_up_to_date(lang, recipe.labels_of(image), "abd")
    assert recipe.is_up_to_date(dataclasses.replace(lang, image="mine:1"), {}, "abd")


def test_version_line_skips_warnings_and_is_bounded() -> None:
    output = "\nPicked up JAVA_TOOL_OPTIONS\nWARNING: x\nopenjdk 17.0.9\n"
    assert recipe.version_line(output) == "Picked up JAVA_TOOL_OPTIONS"
    assert recipe.version_line("Warning: slow\nghc 9.0\n") == "ghc 9.0"
    assert recipe.version_line("x" * 500) == "x" * 200
    assert recipe.version_line("") == ""


def test_step_lines_are_shown_and_hooks_are_not() -> None:
    assert recipe.is_step_line("I: downloading packages with apt...")
    assert recipe.is_step_line("W: something odd")
    assert not recipe.is_step_line("I: running --customize-hook in shell: sh -c ...")
