"""One error hierarchy for the matcher; the service layer maps it to gRPC status codes once.

Each class also derives from the builtin an ordinary Python caller expects (``ValueError`` for bad
input, ``KeyError`` for ids), so library users need not import this module to catch them.
"""


class MatcherError(Exception):
    """Base of every error the matcher raises on purpose."""


class InvalidTemplate(MatcherError, ValueError):
    """A template or probe is malformed: wrong shape, dtype, geometry, or too few valid bits."""


class QualityTooLow(MatcherError, ValueError):
    """A sample is well formed but carries too little usable signal to compare."""


class DuplicateId(MatcherError, ValueError):
    """An id being added is already present (or repeated within the same call)."""


class UnknownId(MatcherError, KeyError):
    """An id being removed or looked up is not present."""

    def __str__(self) -> str:  # KeyError quotes its argument; operators want the plain sentence
        return str(self.args[0]) if self.args else "unknown id"


class DeviceUnavailable(MatcherError, RuntimeError):
    """A GPU kernel was asked for where no CUDA device (or simulator) is available."""


class InvalidImage(MatcherError, ValueError):
    """Image bytes that cannot be decoded, or an image outside the accepted sizes and depths."""


class NothingToCompare(MatcherError, ValueError):
    """A 1:1 probe shares no finger position and no eye with the enrolled person."""
