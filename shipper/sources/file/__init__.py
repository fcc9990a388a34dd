"""The ``file`` source: tails container log files with rotation-safe checkpoints."""
