"""Load the language registry: a TOML data file, one table per language.

Adding a language is an entry in `registry.toml` plus a conformance file in
`conformance/<id>.toml`; no code changes. Data and pure functions only: the sandbox
(which runs a language's image) and the image builder (which makes it) both read the
registry, so it depends on neither, and names an image (`image_ref`) for both.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from streamworker.errors import UnknownLanguage

REGISTRY_PATH = Path(__file__).with_name("registry.toml")


@dataclass(frozen=True)
class Language:
    """One runtime: how to build its image and how to compile and run a program in it.

    Commands are argv lists; `{entrypoint}` is the main file's path relative to the
    work dir, `{stem}` the same without its extension (e.g. a Java class name), and
    `{heap_mb}` the managed heap a run may use (`heap_mb`), so that a runtime's own heap
    limit follows the submission's memory limit instead of its built-in default.
    """

    id: str
    name: str
    packages: tuple[str, ...]
    source_file: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    version_cmd: tuple[str, ...] = ()
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    limits_floor: Mapping[str, float] = field(default_factory=dict)
    setup: tuple[str, ...] = ()
    notes: str = ""
    version: str = ""
    """The runtime's version as packaged (the image label has the full `version_cmd` text)."""
    judge0_ids: tuple[int, ...] = ()
    """Judge0 language ids meaning this language; the first is the one Judge0 CE lists."""
    piston: str = ""
    """Piston v2's name for it ("" = the id); `piston_aliases` are its other names."""
    piston_aliases: tuple[str, ...] = ()
    oom_stderr: tuple[str, ...] = ()
    """Regexes: a failed run whose stderr matches one ran out of its runtime's heap
    (`java.lang.OutOfMemoryError`), which is `memory_limit_exceeded`, not a runtime error."""
    heap_reserve_mb: int = 0
    """Memory kept outside the managed heap (code, metadata, stacks): see `heap_mb`."""

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    def heap_mb(self, memory_mb: int) -> int:
        """The `{heap_mb}` of a run limited to `memory_mb`: all but the reserve, and at
        least a quarter (a JVM's own default), so that a small limit still starts."""
        return max(memory_mb // 4, memory_mb - self.heap_reserve_mb, 1)

    def recipe_hash(self) -> str:
        """Hash of everything that goes into the image; a change means a rebuild."""
        recipe = {"packages": sorted(self.packages), "setup": list(self.setup), "id": self.id}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


class ImageNaming(Protocol):
    """What an image's name depends on besides the language (`Settings` fits)."""

    @property
    def image_prefix(self) -> str: ...

    @property
    def debian_suite(self) -> str: ...


def image_ref(lang: Language, naming: ImageNaming) -> str:
    """The user's own image if the entry names one, else ours for the suite."""
    return lang.image or f"{naming.image_prefix}/{lang.id}:{naming.debian_suite}"


def _language(lang_id: str, raw: Mapping[str, Any]) -> Language:
    compile_cmd = raw.get("compile")
    return Language(
        id=lang_id,
        name=str(raw.get("name", lang_id)),
        packages=tuple(raw.get("packages", ())),
        source_file=str(raw["source_file"]),
        run=tuple(raw["run"]),
        compile=tuple(compile_cmd) if compile_cmd else None,
        version_cmd=tuple(raw.get("version_cmd", ())),
        image=raw.get("image"),
        env=dict(raw.get("env", {})),
        limits_floor=dict(raw.get("limits_floor", {})),
        setup=tuple(raw.get("setup", ())),
        notes=str(raw.get("notes", "")),
        version=str(raw.get("version", "")),
        judge0_ids=tuple(int(i) for i in raw.get("judge0_ids", ())),
        piston=str(raw.get("piston", "")) or lang_id,
        piston_aliases=tuple(str(a) for a in raw.get("piston_aliases", ())),
        oom_stderr=tuple(re.compile(str(r)).pattern for r in raw.get("oom_stderr", ())),
        heap_reserve_mb=int(raw.get("heap_reserve_mb", 0)),
    )


@cache
def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Language]:
    """All languages, by id, in file order."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {lang_id: _language(lang_id, raw) for lang_id, raw in data.items()}


def get_language(lang_id: str, path: Path = REGISTRY_PATH) -> Language:
    try:
        return load_registry(path)[lang_id]
    except KeyError:
        known = ", ".join(sorted(load_registry(path)))
        raise UnknownLanguage(f"unknown language {lang_id!r}; known: {known}") from None


def expand(cmd: tuple[str, ...], entrypoint: str, heap_mb: int | None = None) -> list[str]:
    """Fill `{entrypoint}`, `{stem}` and (for a run) `{heap_mb}` into a command template."""
    stem = entrypoint.rsplit(".", 1)[0] if "." in Path(entrypoint).name else entrypoint
    argv = [part.replace("{entrypoint}", entrypoint).replace("{stem}", stem) for part in cmd]
    if heap_mb is not None:
        argv = [part.replace("{heap_mb}", str(heap_mb)) for part in argv]
    return argv
