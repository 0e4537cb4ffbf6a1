"""Why a model fails, read from a finished run: diagnostics/, similar images, class activation maps."""
