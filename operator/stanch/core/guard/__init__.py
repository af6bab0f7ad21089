"""Guard verdicts: baseline comparison (Mann-Whitney U), SLO gate, success criteria."""
