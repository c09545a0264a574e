"""Synthetic faces with ground-truth flow, visibility and graded intensities."""
