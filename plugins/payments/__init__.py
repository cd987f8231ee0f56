"""Stage 5 (settlement): payment providers implementing ``collect_payment``."""
