"""Stage 2 (review): rules that pass, fail or hold a received order."""
