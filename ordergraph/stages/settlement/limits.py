"""The limits of what settlement's inputs may hold: payment movements and the lines of
bank statements. Lengths are taken from the settlement stage's columns, as the kernel's
``limits`` does for the kernel's."""

from __future__ import annotations

from ordergraph.core.limits import TextLimit
from ordergraph.stages.settlement.tables import BankLine, LedgerEntry, Promotion, Statement

# A payment movement's method (bank_transfer, stripe...) and its reference at the provider.
PAYMENT_METHOD = TextLimit("The method", LedgerEntry.method.length)
PAYMENT_REFERENCE = TextLimit("The reference", LedgerEntry.reference.length, multiline=True)
STATEMENT_NUMBER = TextLimit("The statement number", Statement.number.length)
IDEMPOTENCY_KEY = TextLimit("The idempotency key", LedgerEntry.idempotency_key.length)
# Bank statement lines: line breaks and tabs in them are wrapping, collapsed to spaces
# before the check; any other control character refuses the file.
BANK_ACCOUNT = TextLimit("The account", 70)
BANK_COUNTERPARTY = TextLimit("The counterparty", BankLine.counterparty.length)
# A batch booking's entry carries the texts of all its transactions: only the file's own
# size bounds it.
BANK_TEXT = TextLimit("The remittance text", 5_000_000)
# Promotions: their names, coupon codes and the text arguments of their kinds (a SKU,
# a group's name, an e-mail address).
PROMOTION_NAME = TextLimit("The promotion's name", Promotion.name.length)
COUPON_CODE = TextLimit("The coupon code", Promotion.coupon_code.length)
PROMOTION_ARGUMENT = TextLimit("The argument", 200)
