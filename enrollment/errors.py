"""The card workflow's errors: one small hierarchy under :class:`matcher.errors.MatcherError`.

The service layer maps them to gRPC status codes once, with the matcher's own table; the intended
codes are in :data:`STATUS_NAMES` (names, not ``grpc`` objects, so this module stays free of gRPC).
Each class also derives from the builtin an ordinary Python caller expects, as the matcher's do.
Messages are for operators: they say what is wrong and, for a step out of order, which step is
missing.
"""

from __future__ import annotations

from matcher.errors import MatcherError

__all__ = [
    "WorkflowError",
    "StepOutOfOrder",
    "NotEligible",
    "CapacityExceeded",
    "NotFound",
    "InvalidInput",
    "NotPermitted",
    "AlreadyDone",
    "BiometricServiceError",
    "STATUS_NAMES",
]


class WorkflowError(MatcherError):
    """Base of every error the card workflow raises on purpose."""


class StepOutOfOrder(WorkflowError, RuntimeError):
    """An operation asked for before the step it depends on. ``missing`` names that step
    (e.g. ``"fees paid"``); the message says it in words."""

    def __init__(self, message: str, missing: str) -> None:
        super().__init__(message)
        self.missing = missing


class NotEligible(WorkflowError, ValueError):
    """A person (or a whole household) may not take part in the round; the message says why."""


class CapacityExceeded(WorkflowError, RuntimeError):
    """No appointment is left at the office on the asked day or within the round."""


class NotFound(WorkflowError, KeyError):
    """A household, member, application, office, round, event or item that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; operators want the plain sentence
        return str(self.args[0]) if self.args else "not found"


class InvalidInput(WorkflowError, ValueError):
    """Malformed input: a bad phone number, a missing finger, an empty reason, a wrong amount."""


class NotPermitted(WorkflowError, PermissionError):
    """The actor's role may not perform this operation."""


class AlreadyDone(WorkflowError, ValueError):
    """The thing exists already: a household in the round twice, a receipt recorded twice."""


class BiometricServiceError(WorkflowError, RuntimeError):
    """The matching service refused or failed a call; ``status`` is its gRPC status name."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


#: The gRPC status each error should map to (most specific first, as matcher.service does).
STATUS_NAMES: tuple[tuple[type[WorkflowError], str], ...] = (
    (StepOutOfOrder, "FAILED_PRECONDITION"),
    (NotEligible, "FAILED_PRECONDITION"),
    (CapacityExceeded, "RESOURCE_EXHAUSTED"),
    (NotFound, "NOT_FOUND"),
    (InvalidInput, "INVALID_ARGUMENT"),
    (NotPermitted, "PERMISSION_DENIED"),
    (AlreadyDone, "ALREADY_EXISTS"),
    (BiometricServiceError, "UNAVAILABLE"),
)
