"""Decoy-state BB84 QKD on the comb's channels (seed paper, Sec. III)."""
