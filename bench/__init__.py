"""Benchmarks of the server against the test control plane. They print figures; nothing asserts on time."""
