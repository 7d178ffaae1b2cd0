"""Reliability suite of the service: load, kill -9 durability, malformed input, authorisation."""
