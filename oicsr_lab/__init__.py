"""oicsr-lab: an interactive lab for channel pruning with Out-In-Channel Sparsity Regularization."""

__version__ = "0.1.0"
