"""Reports: the comparison row model, CSV files, metric baselines and the terminal summary."""
