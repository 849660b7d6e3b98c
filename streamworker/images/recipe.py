"""What goes into a runtime image, computed without I/O: hashes, argv, scripts, labels.

Images are layered so that what every language shares is made once:
1. the Debian base: `mmdebstrap --variant=essential --include=apt` writes a root
   filesystem as a tar stream into Docker's import API (`base_mmdebstrap_argv`); built
   once per suite and builder version, not per language;
2. the language layer: a container of the base runs `install_script` (apt-get install of
   the language's packages from a shared deb cache, its setup commands, the trim) and is
   committed; only the language's own files are in that layer;
3. the finish: a metadata-only build copies in the trusted helper `sw-run` and adds the
   labels (`finish_context`).

The recipe hash (packages, setup, suite, helper source, builder version) is stored as a
label: an image whose label matches is not rebuilt. When only the helper changed, step 3
is redone on the existing language layer; the base hash (everything but the helper)
tells the two cases apart.
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

BUILDER_VERSION = "2"
LABEL = "org.streamworker."
BASE_PACKAGES = ("apt",)
"""On top of Essential in the shared base: what installs the languages' packages."""
_APT_OPTIONS = (
    "-o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -o Acquire::Retries=3 "
    "-o Dpkg::Options::=--force-unsafe-io"
)

# Merged /usr by symlinks (as debootstrap does) instead of the usrmerge package, which
# would drag full Perl (~50 MB) into every image. Ships with mmdebstrap >= 1.3.
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"
# mmdebstrap's lines and the install script's own worth showing while building.
_STEP_LINES = tuple(
    f"I: {step}"
    for step in (
        "running apt-get update",
        "downloading",
        "extracting",
        "installing",
        "running setup",
        "trimming",
        "success",
    )
)


def trim_script(root: str) -> str:
    """Shell: delete docs, man pages, translations and logs under `root` ("" for /).

    Dead weight in a sandbox. Deleted after install rather than skipped with dpkg's
    path-exclude: that makes mmdebstrap pipe every essential package through a Python tar
    filter (+15 s per image) and breaks postinsts that expect /usr/share/man (openjdk's
    update-alternatives). Best effort: a path that is not there is fine.
    """
    return (
        f'find "{root}/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null; '
        f'rm -rf "{root}/usr/share/man" "{root}/usr/share/info" "{root}/usr/share/locale" '
        f'"{root}/usr/share/lintian" "{root}/var/log/"*.log "{root}/var/log/apt" '
        f'"{root}/var/cache/debconf/"*-old "{root}/var/lib/dpkg/"*-old '
        f'"{root}/var/cache/apt/"*.bin; true'
    )


def base_ref(image_prefix: str, suite: str) -> str:
    """The shared Debian base's tag, next to the languages' images."""
    return f"{image_prefix}/debian-base:{suite}"


def debian_base_hash(suite: str) -> str:
    """The shared base: a change means bootstrapping Debian again, once."""
    return _hash(BUILDER_VERSION, suite, "debian-base", *BASE_PACKAGES)


def base_hash(lang: Language, suite: str) -> str:
    """Everything mmdebstrap installs; a change means bootstrapping Debian again."""
    return _hash(BUILDER_VERSION, suite, lang.recipe_hash())


def recipe_hash(lang: Language, suite: str, helper_hash: str) -> str:
    """The whole image: the base plus the helper binary."""
    return _hash(base_hash(lang, suite), helper_hash)


def _hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def base_mmdebstrap_argv(
    *, suite: str, sources: list[str], apt_cache: Path, apt_incoming: Path
) -> list[str]:
    """The mmdebstrap command writing the shared base's root filesystem as a tar to stdout.

    Cached .debs are hard-linked in from `apt_cache` (copied across file systems) and the
    ones used are linked out to `apt_incoming`; mmdebstrap's cleanup keeps them out of the
    image. The sources given become the base's own `/etc/apt/sources.list`.
    """
    archives, trim = '"$1/var/cache/apt/archives"', trim_script("$1")
    return [
        "mmdebstrap",
        "--variant=essential",
        "--format=tar",
        "--skip=essential/unlink",
        f"--hook-dir={MERGED_USR_HOOKS}",
        "--include=" + ",".join(BASE_PACKAGES),
        f"--setup-hook=mkdir -p {archives}; {_link_debs(str(apt_cache), archives)}",
        f"--customize-hook=mkdir -p {shlex.quote(str(apt_incoming))}; "
        + _link_debs(archives, shlex.quote(str(apt_incoming))),
        f"--customize-hook={trim}",
        suite,
        "-",
        *sources,
    ]


APT_UPDATE_SCRIPT = f"echo 'I: running apt-get update'; apt-get update -q {_APT_OPTIONS}"
"""Run in a base container with the shared lists directory mounted: once per build."""


def install_script(lang: Language) -> str:
    """Shell run as root in a container of the base, whose result is the language layer.

    Installs without Recommends (as mmdebstrap's `--include` did), runs the setup
    commands, trims, and clears every setuid/setgid bit (the sandbox runs with
    no-new-privileges; without the bits a privilege escalation has nothing to start from).
    """
    lines = ["set -e", "export DEBIAN_FRONTEND=noninteractive"]
    if lang.packages:
        packages = " ".join(shlex.quote(p) for p in lang.packages)
        lines += [
            f"echo {shlex.quote('I: installing ' + ', '.join(lang.packages))}",
            f"apt-get install -y -q --no-install-recommends {_APT_OPTIONS} {packages}",
        ]
    for cmd in lang.setup:
        lines += [f"echo {shlex.quote('I: running setup: ' + cmd)}", f"sh -c {shlex.quote(cmd)}"]
    lines += [
        "set +e",
        "echo 'I: trimming'",
        trim_script(""),
        "find / -xdev -type f -perm /6000 -exec chmod ug-s {} +",
        "echo 'I: success'",
    ]
    return "\n".join(lines) + "\n"


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
    """The context that tags `base_id` plus labels (and the helper, for a language's
    image; the shared base has none): metadata and one small layer."""
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
