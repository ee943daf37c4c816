-- Each claim of an idempotency key has its own lease id: an effect commits its answer
-- only while the record still holds its lease, so a request presumed dead and taken over
-- can never commit a second effect.
ALTER TABLE idempotency ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
