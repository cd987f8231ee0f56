"""Stage 5 (settlement): kinds of promotion, declared through ``promotion_kinds``."""
