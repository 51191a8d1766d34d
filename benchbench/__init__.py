"""benchbench: train, score and compare disentangled representation learners."""

__version__ = "0.1.0"
