"""Stage 4 (notifications): notifiers implementing ``notify``."""
