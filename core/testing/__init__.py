"""Generated runs for tests and benchmarks; nothing in the product imports this package."""
