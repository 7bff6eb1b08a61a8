-- Receipts scoped to the account whose callback they arrived at: one that waits for its send
-- (unmatched_receipts) keeps that account's name and then settles only a delivery of a
-- message sent through it. NULL: any account of the channel (receipts not tied to an account).

ALTER TABLE unmatched_receipts ADD COLUMN account text;
