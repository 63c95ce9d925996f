"""Developer tools that are not part of the library (the fuzz harness); run from the repository root."""
