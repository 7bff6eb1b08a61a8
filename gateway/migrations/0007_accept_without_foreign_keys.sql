-- The group commit checks no foreign keys: each one is a trigger and an index probe per row,
-- about a quarter of PostgreSQL's work per accepted message (bench/README.md). Both are kept
-- true by the code instead:
-- * deliveries.message_id: deliveries are inserted only by the statement that inserts their
--   message (insert_messages), and nothing deletes messages. A retention job that does must
--   delete the message's deliveries with it (their events and sandbox rows cascade from them).
-- * messages.account_id: an account is deleted only once no delivery of it waits, and account
--   ids are never reused, so an old message's id simply finds no account (as NULL did).
--   messages.account_name keeps the name for the log.

ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_account_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_message_id_fkey;
