"""The evaluation protocol: folds and the jobs made from them."""
