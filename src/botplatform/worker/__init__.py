"""Background jobs: declaration, the queue (dramatiq), enqueue-after-commit, dead letters,
the scheduler and the sweeper."""
