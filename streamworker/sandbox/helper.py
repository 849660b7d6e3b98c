"""Build the trusted in-container helper `sw-run` from its C source.

The helper is compiled statically on the host and copied into every runtime image at
`HELPER_PATH`, so figures come from code the submission cannot replace.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from streamworker.errors import ImageBuildError

HELPER_SOURCE = Path(__file__).with_name("sw_run.c")
HELPER_PATH = "/opt/streamworker/sw-run"


def helper_source_hash() -> str:
    """Changes whenever the helper's source changes (part of every image's recipe hash)."""
    return hashlib.sha256(HELPER_SOURCE.read_bytes()).hexdigest()[:16]


def build_helper(out_dir: Path) -> Path:
    """Compile `sw_run.c` into a static binary under `out_dir`; cached by source hash."""
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"sw-run-{helper_source_hash()}"
    if binary.exists():
        return binary
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ImageBuildError("a C compiler (gcc) is needed to build the sandbox helper")
    tmp = binary.with_suffix(".tmp")
    proc = subprocess.run(
        [cc, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp), str(HELPER_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"compiling the sandbox helper failed:\n{proc.stderr}")
    tmp.rename(binary)
    return binary
