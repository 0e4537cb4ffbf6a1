"""A run from start to end: its lifecycle, split units, and the executors that decide where fold jobs run."""
