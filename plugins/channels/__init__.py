"""Stage 1 (entry): sales channels that turn incoming orders into ``OrderDraft``s."""
