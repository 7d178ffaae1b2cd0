"""Optional peer benchmarks: third-party matchers run on the same data as ours, for comparison.

Nothing here is a product dependency; each peer is located at run time and skipped when absent.
"""
