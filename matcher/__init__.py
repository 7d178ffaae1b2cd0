"""amayesh matcher: biometric templates, matching kernels and in-memory galleries."""

__version__ = "0.1.0"
