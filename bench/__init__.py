"""Benchmarks of the bid path, the websocket fan-out and idle websocket memory.

`python -m bench.run` runs every scenario against baselines measured in the same
run; see docs/benchmarks.md.
"""
