"""One shallow error tree: every failure has a stable dotted code and a `retriable` flag.

The mapping to contract statuses happens once, in `streamworker.verdict.status_for_error`.
"""

from __future__ import annotations


class StreamworkerError(Exception):
    """Base of all errors the project raises on purpose."""

    code = "streamworker.error"
    retriable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(StreamworkerError):
    """A setting is missing or malformed; carries the environment key."""

    code = "config.invalid"

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


class InvalidEvent(StreamworkerError):
    """An incoming event is not valid under the contract; `field` names the culprit."""

    code = "event.invalid"

    def __init__(
        self, message: str, *, field: str | None = None, submission_id: str | None = None
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.detail = message
        self.field = field
        self.submission_id = submission_id


class UnknownLanguage(StreamworkerError):
    code = "language.unknown"


class SandboxError(StreamworkerError):
    """Our side of running a container failed (not the user's program)."""

    code = "sandbox.error"


class DockerUnavailable(SandboxError):
    code = "docker.unavailable"
    retriable = True


class ImageMissing(SandboxError):
    code = "sandbox.image_missing"


class ContainerCreateFailed(SandboxError):
    code = "sandbox.create_failed"
    retriable = True


class ContainerGone(SandboxError):
    """The container stopped under us (daemon restart, reaper): a fresh one may work."""

    code = "sandbox.container_gone"
    retriable = True


class LimitNotApplied(SandboxError):
    """The daemon silently discarded a limit we asked for; we refuse to run."""

    code = "sandbox.limit_not_applied"


class HelperProtocolError(SandboxError):
    """The in-container helper's report was missing or malformed."""

    code = "sandbox.helper_protocol"


class ImageBuildError(StreamworkerError):
    code = "image.build_failed"


class TransactionBroken(StreamworkerError):
    """A partition's Kafka transaction can take no more output (its producer failed).

    Only a fresh producer with the same transactional id, and a consumer rewound to the
    committed offsets, can go on: the worker restarts in place (see `worker.lifecycle.run_worker`).
    """

    code = "kafka.transaction_broken"


class PoisonEvent(StreamworkerError):
    """An event whose every attempt ended in a worker restart or crash: not tried again."""

    code = "event.poison"


class OutputRejected(StreamworkerError):
    """Kafka refused one output record itself (e.g. too large): that record's problem,
    not a broken transaction, so the event gets a smaller answer instead."""

    code = "kafka.output_rejected"


class KafkaRefused(StreamworkerError):
    """The broker answered but will not let us in: retrying with the same settings cannot
    help, so start-up fails at once with the reason instead of retrying blind."""

    code = "kafka.refused"
    fix = "check STREAMWORKER_KAFKA_SECURITY_PROTOCOL and the settings it needs"


class KafkaAuthFailed(KafkaRefused):
    """SASL: the broker refused the mechanism or the username and password."""

    code = "kafka.auth_failed"
    fix = (
        "check STREAMWORKER_KAFKA_SASL_USERNAME, STREAMWORKER_KAFKA_SASL_PASSWORD and "
        "STREAMWORKER_KAFKA_SASL_MECHANISM"
    )


class KafkaTlsFailed(KafkaRefused):
    """TLS: the broker's certificate is not trusted or not its name, or ours was refused."""

    code = "kafka.tls_failed"
    fix = (
        "check STREAMWORKER_KAFKA_SSL_CAFILE (the CA that signed the broker's certificate), "
        "the host in STREAMWORKER_KAFKA_BOOTSTRAP, and STREAMWORKER_KAFKA_SSL_CERTFILE/KEYFILE "
        "if the broker wants a client certificate"
    )
