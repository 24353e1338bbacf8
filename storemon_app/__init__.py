"""Local tooling for storemon: CLI, local runtime, data simulator, benchmarks. Never deployed."""
