"""Run folders: file names, atomic sealed writes, checkpoints, the index of runs."""
