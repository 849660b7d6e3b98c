"""Second, real Docker daemons for tests, so the machine's own dockerd is never touched.

`AltDockerd` runs another `dockerd` on this host with its own data root, exec root (and
so its own containerd), pid file and unix socket, optionally listening on 127.0.0.1 with
mutual TLS. It can be stopped and started again (same data root, images kept), which is
how the Docker-health tests kill "the worker's Docker" without stopping anybody else's.

`DindDaemon` runs `streamworker-dind` (built offline by `dev/dind/build.py`) as a
container of the main daemon, reached over TLS on 127.0.0.1 — Docker-in-Docker.

Both are context managers that remove everything they made, even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port, image_env

REPO = Path(__file__).resolve().parents[2]
PYTHON_IMAGE = (
    image_env().get("STREAMWORKER_IMAGE_PREFIX", "streamworker-runtime") + "/python:bookworm"
)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def make_certs(directory: Path, *sans: str) -> Path:
    """A fresh CA, server and client certificates via `dev/tls.sh` (see its header)."""
    subprocess.run(
        ["bash", str(REPO / "dev" / "tls.sh"), str(directory), *sans],
        check=True,
        capture_output=True,
    )
    return directory


def can_run_dockerd() -> bool:
    return os.geteuid() == 0 and shutil.which("dockerd") is not None


def _ping_unix(path: Path) -> bool:
    """The daemon answers `GET /_ping` on its socket."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return b" 200 " in status_line + b" "


def copy_image(ref: str, to_host: str, *tls_args: str) -> None:
    """`docker save REF | docker -H TO_HOST load`: a local image into another daemon."""
    save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
    assert save.stdout is not None
    load = subprocess.run(
        ["docker", "-H", to_host, *tls_args, "load", "-q"],
        stdin=save.stdout,
        capture_output=True,
        check=False,
    )
    save.stdout.close()
    if save.wait() != 0 or load.returncode != 0:
        raise RuntimeError(f"copying {ref} failed: {load.stderr.decode(errors='replace')}")


@dataclass
class AltDockerd:
    """Another dockerd on this host; `certs` (from `make_certs`) adds a TLS listener."""

    root: Path
    certs: Path | None = None
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def sock(self) -> Path:
        return self.root / "alt.sock"

    @property
    def unix_host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def tls_host(self) -> str:
        return f"tcp://127.0.0.1:{self.tls_port}"

    @property
    def client_certs(self) -> Path:
        assert self.certs is not None
        return self.certs / "client"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def argv(self) -> list[str]:
        argv = [
            "dockerd",
            "--config-file", str(self.root / "daemon.json"),
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "x"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "-H", self.unix_host,
            # No networking of its own: sandbox containers use NetworkMode=none, and two
            # daemons must not fight over bridges and iptables rules.
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        ]  # fmt: skip
        if self.certs is not None:
            argv += [
                "-H", self.tls_host,
                "--tlsverify",
                "--tlscacert", str(self.certs / "ca.pem"),
                "--tlscert", str(self.certs / "server-cert.pem"),
                "--tlskey", str(self.certs / "server-key.pem"),
            ]  # fmt: skip
        return argv

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        (self.root / "daemon.json").write_text("{}\n")  # not /etc/docker/daemon.json
        if self.certs is not None and not self.tls_port:
            self.tls_port = free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not _ping_unix(self.sock):
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"dockerd did not answer within {timeout_s}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (dockerd stops its containers and its containerd), SIGKILL if stuck."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._kill_containerd()
        self._kill_leftover_containers()

    def _kill_containerd(self) -> None:
        """A SIGKILLed dockerd leaves its containerd behind; end that one (by its pid)."""
        pidfile = self.root / "x" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(self.root).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)

    def _kill_leftover_containers(self) -> None:
        """Containers a stopping daemon missed (one created while it shut down): runc kills
        and deletes them by their state under our exec root, then their shims are ended."""
        runc_root = self.root / "x" / "runtime-runc" / "moby"
        if runc_root.is_dir() and shutil.which("runc"):
            for state in runc_root.iterdir():
                subprocess.run(
                    ["runc", "--root", str(runc_root), "delete", "--force", state.name],
                    capture_output=True,
                    check=False,
                )
        address = f"-address {self.root}/".encode()
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                if b"containerd-shim" in cmdline and address in cmdline:
                    os.kill(int(proc.name), signal.SIGKILL)

    def load(self, ref: str = PYTHON_IMAGE) -> None:
        copy_image(ref, self.unix_host)

    def remove(self) -> None:
        """Stop, end stray containers, unmount what is left under the root, delete it."""
        self.stop()
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(f"{self.root}/")
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def alt_dockerd(certs: Path | None = None, images: tuple[str, ...] = ()) -> Iterator[AltDockerd]:
    """A started `AltDockerd` (short root under /tmp: socket paths are length-limited)."""
    daemon = AltDockerd(Path(tempfile.mkdtemp(prefix="swd-", dir="/tmp")), certs)
    try:
        daemon.start()
        for ref in images:
            daemon.load(ref)
        yield daemon
    finally:
        daemon.remove()


# -- Docker-in-Docker ---------------------------------------------------------------------


def build_dind_image() -> str:
    """`streamworker-dind:<suite>`, built (or found up to date) by dev/dind/build.py."""
    built = subprocess.run(
        [sys.executable, str(REPO / "dev" / "dind" / "build.py")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building the DinD image failed:\n{built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1]


@dataclass
class DindDaemon:
    """A dockerd inside a container of the main daemon, on 127.0.0.1:`port` with TLS."""

    name: str
    port: int
    certs: Path

    @property
    def tls_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def client_certs(self) -> Path:
        return self.certs / "client"

    def tls_args(self) -> list[str]:
        client = self.client_certs
        return [
            "--tlsverify",
            f"--tlscacert={client / 'ca.pem'}",
            f"--tlscert={client / 'cert.pem'}",
            f"--tlskey={client / 'key.pem'}",
        ]

    def answers(self) -> bool:
        found = subprocess.run(
            ["docker", "-H", self.tls_host, *self.tls_args(), "version"],
            capture_output=True,
            check=False,
        )
        return found.returncode == 0

    def logs(self) -> str:
        found = subprocess.run(["docker", "logs", self.name], capture_output=True, check=False)
        return (found.stdout + found.stderr).decode(errors="replace")[-4000:]

    def load(self, ref: str = PYTHON_IMAGE) -> None:
        copy_image(ref, self.tls_host, *self.tls_args())


# Everything --privileged gives except CAP_SYS_RESOURCE, which some hosts (ours) cannot
# grant; the image's entry point remounts the cgroups read-write instead.
DIND_RUN_FLAGS = [
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
    "--device-cgroup-rule=a *:* rwm",
    "--cgroupns=private",
    # The host network, bound to 127.0.0.1 only: no dependence on docker0 or iptables.
    "--network=host",
]


@contextlib.contextmanager
def dind_daemon(
    image: str, certs: Path, timeout_s: float = START_TIMEOUT_S
) -> Iterator[DindDaemon]:
    """A started DinD daemon; its container and volume are removed afterwards."""
    daemon = DindDaemon(f"swdind-{uuid.uuid4().hex[:10]}", free_port(), certs)
    dockerd = [
        "dockerd", "-H", f"tcp://127.0.0.1:{daemon.port}", "--tlsverify",
        "--tlscacert=/certs/ca.pem", "--tlscert=/certs/server-cert.pem",
        "--tlskey=/certs/server-key.pem",
        "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
    ]  # fmt: skip
    try:
        run = [
            "docker", "run", "-d", "--name", daemon.name, *DIND_RUN_FLAGS,
            "--label", "org.streamworker.test=dind",
            "-v", "/var/lib/docker", "-v", f"{certs}:/certs:ro",
            image, *dockerd,
        ]  # fmt: skip
        subprocess.run(run, check=True, capture_output=True)
        deadline = time.monotonic() + timeout_s
        while not daemon.answers():
            if time.monotonic() > deadline:
                raise TimeoutError(f"DinD did not answer within {timeout_s}s:\n{daemon.logs()}")
            time.sleep(0.3)
        yield daemon
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", daemon.name], capture_output=True, check=False)
