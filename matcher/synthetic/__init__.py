"""Synthetic biometric templates with realistic statistics, for tests and benchmarks at scale."""
