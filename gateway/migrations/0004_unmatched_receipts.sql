-- A receipt can arrive before the dispatcher has recorded the send it reports on (fast
-- providers answer the send and push the receipt at once). Such receipts wait here and are
-- applied when the delivery is recorded as sent.

CREATE TABLE unmatched_receipts (
    id           bigserial PRIMARY KEY,
    channel      text NOT NULL,
    provider_id  text NOT NULL,
    recipient    text,
    delivered    boolean NOT NULL,
    code         text,
    reason       text,
    at           timestamptz,
    detail       jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unmatched_receipts_provider_id ON unmatched_receipts (provider_id);
