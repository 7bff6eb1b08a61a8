-- Channels beyond e-mail: provider templates and options per message, receipts after "sent",
-- and rate-limit slots that a deferred delivery owns.

ALTER TABLE messages ADD COLUMN template text;
ALTER TABLE messages ADD COLUMN options jsonb NOT NULL DEFAULT '{}';

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('queued', 'sending', 'retrying', 'sent', 'failed',
                      'delivered', 'undelivered'));
-- When a rate limit deferred this delivery, the slot it reserved: on its next claim it sends
-- without reserving again.
ALTER TABLE deliveries ADD COLUMN slot_at timestamptz;
ALTER TABLE deliveries ADD COLUMN receipt_at timestamptz;

-- Receipts find deliveries by the provider's id.
CREATE INDEX deliveries_provider_id ON deliveries (provider_id) WHERE provider_id IS NOT NULL;
