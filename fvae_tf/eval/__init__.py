"""Evaluation: baselines, the paper's protocol, reports. The top layer; it uses everything below."""
