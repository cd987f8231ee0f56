"""GraphQL for stage 5: confirmation, statements and payments (``statements``), and
promotions (``promotions``)."""
