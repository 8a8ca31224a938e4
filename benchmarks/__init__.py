"""Benchmarks (`make bench`): figures, not pass/fail. Alternatives are compared as ratios
measured in the same run, because the machine is shared and noisy."""
