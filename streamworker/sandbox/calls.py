"""Every Docker API call bounded in time: a wedged daemon costs a retry, never a hang.

On a timeout the call's request is cancelled and `DockerUnavailable` (retriable) is
raised; whatever the daemon may still do is left to the reaper (every container carries
a deadline label).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiodocker
import aiohttp

from streamworker.errors import DockerUnavailable

T = TypeVar("T")

CREATE_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
INSPECT_TIMEOUT_S = 10.0
ATTACH_TIMEOUT_S = 10.0
UPDATE_TIMEOUT_S = 10.0
RENAME_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 10.0
DELETE_TIMEOUT_S = 30.0
"""A forced removal kills and unmounts first: slower than the other calls under load."""
LIST_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 5.0
DOCKER_LOST = (aiohttp.ClientError, ConnectionError)
"""What a request to a daemon that went away raises (besides aiodocker's status 900)."""


async def docker_call(call: Awaitable[T], timeout_s: float, what: str) -> T:
    """Await one Docker API call for at most `timeout_s`.

    A timeout, a lost connection or aiodocker's "cannot connect" (status 900) raise
    `DockerUnavailable`; any other `DockerError` (404, 409, ...) is the caller's to read.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except TimeoutError as exc:
        raise DockerUnavailable(f"Docker did not answer {what} within {timeout_s:g} s") from exc
    except DOCKER_LOST as exc:
        raise DockerUnavailable(f"lost Docker during {what}: {exc}") from exc
    except aiodocker.DockerError as exc:
        if exc.status == 900:
            raise DockerUnavailable(f"Docker is unreachable ({what}): {exc.message}") from exc
        raise
