"""The run directory on disk: the only code that knows its file names and writes atomically; content hashes."""
