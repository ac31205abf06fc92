"""One run's life, and the commands made of runs: train, cv, sweep, batch, search."""
