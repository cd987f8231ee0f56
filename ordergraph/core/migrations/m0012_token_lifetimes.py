"""0012: API tokens that expire or are revoked."""

SQLITE = [
    'ALTER TABLE "api_tokens" ADD COLUMN "expires_at" TIMESTAMPTZ DEFAULT null',
    'ALTER TABLE "api_tokens" ADD COLUMN "revoked_at" TIMESTAMPTZ DEFAULT null',
]

POSTGRES = SQLITE
