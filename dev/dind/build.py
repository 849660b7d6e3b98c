"""Build `streamworker-dind:<suite>`: a Docker daemon image made offline from Debian packages.

Like the runtime images, no registry is involved: `mmdebstrap --variant=apt` writes a
root filesystem with Debian's `docker.io` (dockerd, containerd, runc, docker-init) as a
tar stream into `docker import`. The recipe hash is stored as a label and a build is
skipped when the tag carries the current one. Used by the Docker-in-Docker tests; run
it as `.venv/bin/python dev/dind/build.py [--force]` (prints the image reference).

The image is meant to run `--privileged` with `/var/lib/docker` on a volume and its TLS
certificates mounted, e.g.:

    docker run -d --privileged -v /var/lib/docker -v CERTS:/certs:ro \\
      -p 127.0.0.1:2376:2376 streamworker-dind:bookworm dockerd \\
      -H tcp://0.0.0.0:2376 --tlsverify --tlscacert /certs/ca.pem \\
      --tlscert /certs/server-cert.pem --tlskey /certs/server-key.pem
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamworker.images.mirror import debian_source_lines
from streamworker.settings import load_settings

RECIPE_VERSION = "2"
PACKAGES = ("docker.io", "ca-certificates", "iptables", "mount", "procps")
LABEL = "org.streamworker.recipe-hash"
REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = Path(__file__).with_name("entrypoint.sh")
ENTRYPOINT_IN_IMAGE = "/usr/local/bin/dind-entrypoint"
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/doc/*")
TRIM_HOOK = 'rm -rf "$1/usr/share/man" "$1/usr/share/info" "$1/usr/share/locale" "$1/var/log/"*.log'


def image_ref(suite: str) -> str:
    return f"streamworker-dind:{suite}"


def recipe_hash(suite: str) -> str:
    recipe = {
        "packages": sorted(PACKAGES),
        "suite": suite,
        "version": RECIPE_VERSION,
        "entrypoint": hashlib.sha256(ENTRYPOINT.read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def inspect(ref: str) -> tuple[str, str] | None:
    """(image id, recipe hash) of the tagged image, or None when there is no such image."""
    found = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        return None
    image_id, labels = found.stdout.split(" ", 1)
    return image_id, str((json.loads(labels) or {}).get(LABEL, ""))


def _link_all(src: str, dst: str) -> str:
    """Shell: hard-link (else copy) every .deb of `src` into `dst`; best effort."""
    return (
        f'for f in {src}/*.deb; do [ -e "$f" ] || continue; '
        f'ln -f "$f" {dst}/ 2>/dev/null || cp "$f" {dst}/; done; true'
    )


def mmdebstrap_argv(suite: str, sources: list[str], cache: Path, incoming: Path) -> list[str]:
    archives = '"$1/var/cache/apt/archives"'
    return [
        "mmdebstrap",
        "--variant=apt",
        "--format=tar",
        "--include=" + ",".join(PACKAGES),
        *(f"--dpkgopt=path-exclude={path}" for path in DPKG_EXCLUDES),
        f"--setup-hook=mkdir -p {archives}; {_link_all(shlex.quote(str(cache)), archives)}",
        f"--customize-hook=mkdir -p {shlex.quote(str(incoming))}; "
        + _link_all(archives, shlex.quote(str(incoming))),
        '--essential-hook=mkdir -p "$1/usr/share/man/man1"',
        f"--customize-hook=upload {shlex.quote(str(ENTRYPOINT))} {ENTRYPOINT_IN_IMAGE}",
        f'--customize-hook=chmod 0755 "$1{ENTRYPOINT_IN_IMAGE}"',
        f"--customize-hook={TRIM_HOOK}",
        suite,
        "-",
        *sources,
    ]


def build(force: bool = False) -> str:
    """Build the image unless the tag already carries the current recipe hash."""
    settings = load_settings()
    suite = settings.debian_suite
    ref, want = image_ref(suite), recipe_hash(suite)
    existing = inspect(ref)
    if not force and existing is not None and existing[1] == want:
        return ref
    if shutil.which("mmdebstrap") is None:
        raise SystemExit("dind: mmdebstrap is missing (apt-get install mmdebstrap)")
    state = (
        (REPO / settings.data_dir).resolve()
        if not settings.data_dir.is_absolute()
        else settings.data_dir
    )
    cache = state / "apt-cache"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = state / "tmp"
    tmp.mkdir(exist_ok=True)
    sources = debian_source_lines(suite, override=settings.debian_mirror)
    started = time.monotonic()
    print(f"dind: building {ref} from {', '.join(PACKAGES)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=tmp, prefix="dind-") as work:
        incoming, log_path = Path(work) / "incoming", Path(work) / "mmdebstrap.log"
        argv = mmdebstrap_argv(suite, sources, cache, incoming)
        with log_path.open("wb") as log:
            strap = subprocess.Popen(
                ["env", f"TMPDIR={tmp}", *argv], stdout=subprocess.PIPE, stderr=log
            )
            assert strap.stdout is not None
            changes = [
                f"LABEL {LABEL}={want}",
                f'ENTRYPOINT ["{ENTRYPOINT_IN_IMAGE}"]',
                'CMD ["dockerd"]',
            ]
            # Untagged first: a tar cut short by a failing mmdebstrap must not get the tag.
            imported = subprocess.run(
                ["docker", "import", *(f"--change={c}" for c in changes), "-"],
                stdin=strap.stdout,
                capture_output=True,
                text=True,
                check=False,
            )
            strap.stdout.close()
            failed = strap.wait() != 0
        image_id = imported.stdout.strip()
        if failed or imported.returncode != 0:
            if image_id:
                subprocess.run(["docker", "rmi", image_id], capture_output=True, check=False)
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"dind: build failed: {imported.stderr.strip()}\n{tail}")
        subprocess.run(["docker", "tag", image_id, ref], check=True)
        for deb in incoming.glob("*.deb"):
            deb.replace(cache / deb.name)
    if existing is not None:  # the superseded image; kept if a container still uses it
        subprocess.run(["docker", "rmi", existing[0]], capture_output=True, check=False)
    print(f"dind: built {ref} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    print(build(force=parser.parse_args().force))


if __name__ == "__main__":
    main()
