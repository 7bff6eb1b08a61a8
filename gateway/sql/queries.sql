-- name: insert_messages
-- Group commit in ONE statement (one round trip; a statement is its own transaction): the
-- messages, the relay's original MIME of those that have one, the deliveries of the messages
-- actually inserted, and a NOTIFY if there are any. The batch is one JSON array of NewMessage,
-- encoded by msgspec in C (16 parameter arrays cost asyncpg far more CPU) and sent as UTF-8
-- bytes; the large fields (text, html, original MIME) are left out of it and come as arrays
-- keyed by message id ($2-$5), so a large body is copied once into the query, not also
-- escaped into JSON (and MIME not base64'd). Idempotent replays,
-- and messages of a batch retried after its commit, are skipped by ON CONFLICT; message_raw's
-- foreign key is checked at the end of the statement, when the messages exist (messages and
-- deliveries have none: migration 0007). The answer is one row:
-- the ids that were skipped, usually none (cheaper to send and decode than the inserted ones).
WITH b AS (
    SELECT * FROM json_to_recordset(convert_from($1::bytea, 'UTF8')::json) AS b (
        id uuid, channel text, account_id bigint, account_name text, recipients text[],
        delivery_ids uuid[], subject text, variables jsonb, ingress text,
        ingress_detail jsonb, idempotency_scope text, idempotency_key text, request_hash text,
        send_at timestamptz, template text, options jsonb)
), big AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bytea[])
        AS big (id, text, html, raw)
), m AS (
    INSERT INTO messages (id, channel, account_id, account_name, subject, body_text, body_html,
                          variables, ingress, ingress_detail, idempotency_scope, idempotency_key,
                          request_hash, send_at, template, options)
    SELECT b.id, channel, account_id, account_name, subject, big.text, big.html, variables,
           ingress, ingress_detail, idempotency_scope, idempotency_key,
           decode(request_hash, 'base64'), send_at, template, options
    FROM b JOIN big ON big.id = b.id
    ON CONFLICT DO NOTHING
    RETURNING id
), r AS (
    INSERT INTO message_raw (message_id, data)
    SELECT big.id, big.raw FROM big JOIN m ON m.id = big.id WHERE big.raw IS NOT NULL
), d AS (
    INSERT INTO deliveries (id, message_id, recipient, status, due_at)
    SELECT x.id, b.id, x.recipient, 'queued', coalesce(b.send_at, now())
    FROM b JOIN m ON m.id = b.id, unnest(b.delivery_ids, b.recipients) AS x (id, recipient)
    RETURNING 1
)
SELECT array(SELECT id FROM b EXCEPT SELECT id FROM m) AS skipped,
       (SELECT pg_notify('msggate_due', '') FROM (SELECT 1 FROM d LIMIT 1) AS any_d);

-- name: find_idempotent
SELECT id, request_hash FROM messages WHERE idempotency_scope = $1 AND idempotency_key = $2;

-- name: notify_due
SELECT pg_notify('msggate_due', '');

-- name: message
SELECT id, channel, account_name, subject, body_text, body_html, variables, ingress,
       ingress_detail, idempotency_key, send_at, created_at, template, options
FROM messages WHERE id = $1;

-- name: message_deliveries
SELECT id, recipient, status, attempts, due_at, provider_id, units, last_code, last_error,
       updated_at, finished_at, receipt_at
FROM deliveries WHERE message_id = $1 ORDER BY recipient, id;

-- name: message_events
SELECT e.delivery_id, e.at, e.kind, e.detail
FROM delivery_events e JOIN deliveries d ON d.id = e.delivery_id
WHERE d.message_id = $1 ORDER BY e.id;

-- name: claim_deliveries
-- Take up to $1 due deliveries (new, retrying, or sending with an expired lease), lease them to
-- node $2 for $3 seconds, and record the attempt, all in one statement. Their bodies (text,
-- html, original MIME; octet_length reads the stored length without loading a value) come with
-- them: only as many as fit in $4 bytes are taken, but always the first, so large messages are
-- sent a few at a time; the rest stay due for the next claim.
WITH due AS (
    SELECT id, message_id, due_at FROM deliveries
    WHERE status IN ('queued', 'retrying', 'sending') AND due_at <= now()
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), sized AS (
    SELECT due.id, s.size,
           sum(s.size) OVER (ORDER BY due.due_at, due.id) AS running,
           row_number() OVER (ORDER BY due.due_at, due.id) AS n
    FROM due
    JOIN messages m ON m.id = due.message_id
    LEFT JOIN message_raw r ON r.message_id = due.message_id,
    LATERAL (SELECT coalesce(octet_length(m.body_text), 0) + coalesce(octet_length(m.body_html), 0)
                    + coalesce(octet_length(r.data), 0) AS size) AS s
), claimed AS (
    UPDATE deliveries d
    SET status = 'sending', attempts = d.attempts + 1, leased_by = $2,
        due_at = now() + make_interval(secs => $3), updated_at = now()
    FROM sized WHERE d.id = sized.id AND (sized.running <= $4 OR sized.n = 1)
    RETURNING d.id, d.message_id, d.recipient, d.attempts, d.slot_at, sized.size
), attempt AS (
    INSERT INTO delivery_events (delivery_id, kind, detail)
    SELECT id, 'attempt', jsonb_build_object('attempt', attempts, 'node', $2::text)
    FROM claimed
)
SELECT c.id, c.message_id, c.recipient, c.attempts, m.channel, m.account_id, m.account_name,
       m.subject, m.body_text, m.body_html, m.variables, a.revision AS account_revision,
       m.template, m.options, c.slot_at, c.size
FROM claimed c
JOIN messages m ON m.id = c.message_id
LEFT JOIN accounts a ON a.id = m.account_id;

-- name: finish_deliveries
-- Record outcomes; a row whose lease passed to another node meanwhile is left alone.
-- A deferral (kind 'deferred': a rate limit's slot is later) does not count as an attempt.
WITH o AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::text[],
                         $6::int[], $7::text[], $8::text[], $9::jsonb[], $10::text[])
        AS o (id, attempt, status, due_at, provider_id, units, code, error, detail, kind)
), updated AS (
    UPDATE deliveries d
    SET status = o.status, due_at = coalesce(o.due_at, d.due_at), leased_by = NULL,
        attempts = CASE WHEN o.kind = 'deferred' THEN d.attempts - 1 ELSE d.attempts END,
        slot_at = CASE WHEN o.kind = 'deferred' THEN o.due_at END,
        provider_id = coalesce(o.provider_id, d.provider_id), units = coalesce(o.units, d.units),
        last_code = o.code, last_error = o.error, updated_at = now(),
        finished_at = CASE WHEN o.status IN ('sent', 'failed') THEN now() END
    FROM o
    WHERE d.id = o.id AND d.status = 'sending' AND d.attempts = o.attempt
    RETURNING d.id
)
INSERT INTO delivery_events (delivery_id, kind, detail)
SELECT o.id, o.kind, o.detail FROM o JOIN updated u ON u.id = o.id
RETURNING delivery_id, at, kind, detail;

-- name: next_due
SELECT min(due_at) FROM deliveries WHERE status IN ('queued', 'retrying', 'sending');

-- name: record_sandbox_many
INSERT INTO sandbox_messages (delivery_id, message_id, channel, account, recipient, subject,
                              body_text, body_html, variables)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::jsonb[])
ON CONFLICT (delivery_id) DO NOTHING;

-- name: list_sandbox
SELECT id, delivery_id, message_id, channel, account, recipient, subject, body_text, body_html,
       variables, recorded_at
FROM sandbox_messages
WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR recipient = $2)
  AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4;

-- name: insert_api_key
INSERT INTO api_keys (name, key_hash, prefix) VALUES ($1, $2, $3)
RETURNING id, name, prefix, created_at, revoked_at;

-- name: api_key_by_hash
SELECT id, name, prefix, created_at, revoked_at FROM api_keys
WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: list_api_keys
SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
RETURNING id, name, prefix, created_at, revoked_at;

-- name: count_api_keys
SELECT count(*) FROM api_keys WHERE revoked_at IS NULL;

-- name: insert_account
INSERT INTO accounts (channel, name, sandbox, config, secrets) VALUES ($1, $2, $3, $4, $5)
RETURNING id, channel, name, sandbox, config, secrets, revision, created_at, updated_at;

-- name: account_by_name
SELECT id, channel, name, sandbox, config, secrets, revision, created_at, updated_at
FROM accounts WHERE name = $1;

-- name: account_by_id
SELECT id, channel, name, sandbox, config, secrets, revision, created_at, updated_at
FROM accounts WHERE id = $1;

-- name: list_accounts
-- $2: an ILIKE pattern over the name and the (non-secret) settings, see gateway.sql.contains.
SELECT id, channel, name, sandbox, config, secrets, revision, created_at, updated_at
FROM accounts
WHERE ($1::text IS NULL OR channel = $1)
  AND ($2::text IS NULL OR name ILIKE $2 OR config::text ILIKE $2)
ORDER BY name;

-- name: update_account
UPDATE accounts SET config = $2, secrets = $3, revision = revision + 1, updated_at = now()
WHERE name = $1 AND revision = $4
RETURNING id, channel, name, sandbox, config, secrets, revision, created_at, updated_at;

-- name: pending_for_account
SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id
WHERE m.account_id = $1 AND d.status IN ('queued', 'retrying', 'sending');

-- name: delete_account
DELETE FROM accounts WHERE id = $1;

-- name: record_receipts
-- Receipts: deliveries of channel $1 with provider id $2[i] (and recipient $3[i], if given; of
-- a message sent through account $9[i], if given) become delivered or undelivered; a receipt
-- never turns a final receipt back. A receipt that matches no delivery yet is kept
-- (unmatched_receipts) for when its send is recorded.
WITH r AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::jsonb[], $9::text[])
        AS r (provider_id, recipient, delivered, code, reason, at, detail, account)
), updated AS (
    UPDATE deliveries d
    SET status = CASE WHEN r.delivered THEN 'delivered' ELSE 'undelivered' END,
        last_code = coalesce(r.code, d.last_code),
        last_error = CASE WHEN r.delivered THEN d.last_error ELSE r.reason END,
        receipt_at = coalesce(r.at, now()), updated_at = now()
    FROM r, messages m
    WHERE d.provider_id = r.provider_id AND m.id = d.message_id AND m.channel = $1
      AND (r.recipient IS NULL OR d.recipient = r.recipient)
      AND (r.account IS NULL OR m.account_name = r.account)
      AND d.status = 'sent'
    RETURNING d.id, d.message_id, d.status, d.provider_id, d.recipient, m.account_name,
              r.detail
), kept AS (
    INSERT INTO unmatched_receipts (channel, provider_id, recipient, delivered, code, reason,
                                    at, detail, account)
    SELECT $1, r.provider_id, r.recipient, r.delivered, r.code, r.reason, r.at, r.detail,
           r.account
    FROM r
    WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.provider_id = r.provider_id
                      AND (r.recipient IS NULL OR u.recipient = r.recipient)
                      AND (r.account IS NULL OR u.account_name = r.account))
), event AS (
    INSERT INTO delivery_events (delivery_id, kind, detail)
    SELECT id, 'receipt', detail || jsonb_build_object('status', status) FROM updated
    RETURNING delivery_id, at, kind, detail
)
SELECT e.delivery_id, e.at, e.kind, e.detail, u.message_id
FROM event e JOIN updated u ON u.id = e.delivery_id;

-- name: apply_unmatched_receipts
-- When deliveries $1 are recorded as sent, receipts that came early take effect (a receipt
-- kept for an account only on a delivery of a message sent through that account).
WITH r AS (
    DELETE FROM unmatched_receipts x
    USING deliveries d, messages m
    WHERE d.id = ANY($1::uuid[]) AND d.status = 'sent' AND x.provider_id = d.provider_id
      AND m.id = d.message_id AND m.channel = x.channel
      AND (x.recipient IS NULL OR x.recipient = d.recipient)
      AND (x.account IS NULL OR x.account = m.account_name)
    RETURNING x.*, d.id AS delivery_id
), updated AS (
    UPDATE deliveries d
    SET status = CASE WHEN r.delivered THEN 'delivered' ELSE 'undelivered' END,
        last_code = coalesce(r.code, d.last_code),
        last_error = CASE WHEN r.delivered THEN d.last_error ELSE r.reason END,
        receipt_at = coalesce(r.at, r.received_at), updated_at = now()
    FROM r WHERE d.id = r.delivery_id
    RETURNING d.id, d.message_id, d.status, r.detail
), event AS (
    INSERT INTO delivery_events (delivery_id, kind, detail)
    SELECT id, 'receipt', detail || jsonb_build_object('status', status, 'early', true)
    FROM updated
    RETURNING delivery_id, at, kind, detail
)
SELECT e.delivery_id, e.at, e.kind, e.detail, u.message_id
FROM event e JOIN updated u ON u.id = e.delivery_id;

-- name: prune_unmatched_receipts
DELETE FROM unmatched_receipts WHERE received_at < now() - interval '3 days';

-- name: message_raw_many
SELECT message_id, data FROM message_raw WHERE message_id = ANY($1::uuid[]);

-- name: insert_relay_user
INSERT INTO relay_users (username, password_hash) VALUES ($1, $2)
RETURNING username, created_at, last_login_at;

-- name: relay_user_hash
SELECT password_hash FROM relay_users WHERE username = $1;

-- name: relay_user_logged_in
-- A successful AUTH: note the time, and store a rehashed password when the parameters changed.
UPDATE relay_users SET last_login_at = now(), password_hash = coalesce($2, password_hash)
WHERE username = $1;

-- name: list_relay_users
SELECT username, created_at, last_login_at FROM relay_users ORDER BY username;

-- name: delete_relay_user
DELETE FROM relay_users WHERE username = $1 RETURNING id;

-- name: insert_access_rule
INSERT INTO access_rules (name, cidr) VALUES ($1, $2) RETURNING id, name, cidr, created_at;

-- name: list_access_rules
-- Search by name ($1: an ILIKE pattern, see gateway.sql.contains) and by an address the rule
-- covers.
SELECT id, name, cidr, created_at FROM access_rules
WHERE ($1::text IS NULL OR name ILIKE $1) AND ($2::inet IS NULL OR cidr >>= $2)
ORDER BY id;

-- name: delete_access_rule
DELETE FROM access_rules WHERE id = $1 RETURNING id;

-- name: access_cidrs
SELECT cidr FROM access_rules;

-- name: access_rule_ids
SELECT id, cidr FROM access_rules;

-- name: lock_access_rules
-- Rule changes take turns (each checks the list it leaves); readers are not blocked.
LOCK TABLE access_rules IN SHARE ROW EXCLUSIVE MODE;

-- name: bounce_facts
-- What a bounce (DSN) for delivery $1 needs, if it failed and its message came in by SMTP.
SELECT d.id AS delivery_id, d.message_id, d.recipient, d.status, d.last_code, d.last_error,
       d.updated_at, m.channel, m.subject, m.ingress_detail, m.created_at
FROM deliveries d JOIN messages m ON m.id = d.message_id
WHERE d.id = $1 AND m.ingress = 'smtp' AND d.status IN ('failed', 'undelivered');

-- name: bounces_missing
-- Recent permanent failures of SMTP-submitted messages that have no bounce yet (the sweep that
-- catches what the live observer missed, e.g. a node that died right after the failure).
SELECT d.id
FROM deliveries d JOIN messages m ON m.id = d.message_id
WHERE d.status IN ('failed', 'undelivered')
  AND d.updated_at > now() - make_interval(secs => $1)
  AND d.updated_at < now() - make_interval(secs => $2)
  AND m.ingress = 'smtp' AND coalesce(m.ingress_detail->>'mail_from', '') <> ''
  AND NOT EXISTS (SELECT 1 FROM messages b
                  WHERE b.idempotency_scope = 'relay-bounce'
                    AND b.idempotency_key = 'bounce:' || d.id::text)
ORDER BY d.updated_at
LIMIT $3;
