"""Which Debian mirror the image builder uses: the one this machine's apt already uses.

Workers often sit behind a local mirror or a snapshot; reusing the machine's own apt
sources means image builds reach exactly what `apt-get` reaches. Order: an explicit
`STREAMWORKER_DEBIAN_MIRROR`, then the machine's sources for the suite (with its
`-updates` and `-security` companions), then the public fallback `DEFAULT_MIRROR`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_ROOT = Path("/etc/apt")


class AptSource(NamedTuple):
    """One `deb` entry: a URI serving some suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_one_line(text: str) -> list[AptSource]:
    """Entries of a classic `sources.list` file (`deb [opts] uri suite comp...`)."""
    sources = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            sources.append(AptSource(words[0], (words[1],), tuple(words[2:])))
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """Entries of a deb822 `.sources` file (stanzas of `Types:`, `URIs:`, `Suites:`...)."""
    sources = []
    for stanza in _stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        sources += [AptSource(uri, suites, components) for uri in stanza.get("uris", "").split()]
    return sources


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()
    if stanza:
        yield stanza


def machine_sources(root: Path = APT_ROOT) -> list[AptSource]:
    """Every `deb` entry apt itself would read (files apt ignores are ignored here too)."""
    sources: list[AptSource] = []
    main_list = root / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"))
    parts = root / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"))
    return sources


def debian_source_lines(
    suite: str, *, override: str = "", sources: list[AptSource] | None = None
) -> list[str]:
    """One-line `deb` entries for mmdebstrap: the suite, its updates and security.

    `override` (a mirror URL) wins; otherwise the machine's entries for `suite`,
    then for any `*debian*` URI with a release suite (a host on another release);
    then `DEFAULT_MIRROR`.
    """
    if override:
        return [f"deb {override} {suite} main", f"deb {override} {suite}-updates main"]
    sources = machine_sources() if sources is None else sources
    with_main = [s for s in sources if "main" in s.components]
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    exact = [f"deb {s.uri} {x} main" for s in with_main for x in s.suites if x in wanted]
    if any(line.endswith(f" {suite} main") for line in exact):
        return list(dict.fromkeys(exact))
    lines = []
    for src in with_main:
        if "debian" not in src.uri:
            continue
        for x in src.suites:
            if "-" not in x:
                lines += [f"deb {src.uri} {suite} main", f"deb {src.uri} {suite}-updates main"]
            elif x.endswith("-security"):
                lines.append(f"deb {src.uri} {suite}-security main")
    if any(line.endswith(f" {suite} main") for line in lines):
        return list(dict.fromkeys(lines))
    return [f"deb {DEFAULT_MIRROR} {suite} main", f"deb {DEFAULT_MIRROR} {suite}-updates main"]
