"""Local simulators of the remote APIs, served over real HTTP, for tests, demo and benchmarks."""
