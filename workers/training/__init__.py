"""Training classifier heads: labelled datasets, grouped splits, heads, fitting."""
