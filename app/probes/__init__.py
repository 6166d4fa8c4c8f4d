"""Judge robustness probes: deterministic rewrites that test whether a reward can be gamed."""
