"""facegen: train, sample, edit and evaluate face-image generators."""

__version__ = "0.1.0"
