-- console: the web console's users, sessions, and its message log and overview.
-- Loaded by gateway.console_store (load_queries("console.sql")), like queries.sql.

-- name: console_insert_user
INSERT INTO console_users (name, password_hash, role, language, time_zone, must_change_password)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, role, language, time_zone, must_change_password, created_at, updated_at,
          last_login_at;

-- name: console_user_by_id
SELECT id, name, role, language, time_zone, must_change_password, created_at, updated_at,
       last_login_at
FROM console_users WHERE id = $1;

-- name: console_user_login
SELECT id, password_hash FROM console_users WHERE name = $1;

-- name: console_list_users
SELECT id, name, role, language, time_zone, must_change_password, created_at, updated_at,
       last_login_at
FROM console_users
WHERE ($1::text IS NULL OR name ILIKE $1)
ORDER BY name;

-- name: console_count_users
SELECT count(*) FROM console_users;

-- name: console_update_user
-- Role, language and time zone; the last administrator keeps the role (checked in the same
-- statement, so two administrators demoting each other at once cannot both succeed).
UPDATE console_users u
SET role = $2, language = $3, time_zone = $4, updated_at = now()
WHERE u.id = $1
  AND ($2 = 'admin' OR u.role <> 'admin'
       OR EXISTS (SELECT 1 FROM console_users o WHERE o.role = 'admin' AND o.id <> u.id))
RETURNING id, name, role, language, time_zone, must_change_password, created_at, updated_at,
          last_login_at;

-- name: console_set_password
UPDATE console_users
SET password_hash = $2, must_change_password = $3, updated_at = now()
WHERE id = $1
RETURNING id;

-- name: console_delete_user
-- Never the last administrator (checked in the same statement).
DELETE FROM console_users u
WHERE u.id = $1
  AND (u.role <> 'admin'
       OR EXISTS (SELECT 1 FROM console_users o WHERE o.role = 'admin' AND o.id <> u.id))
RETURNING id;

-- name: console_user_logged_in
UPDATE console_users
SET last_login_at = now(), password_hash = coalesce($2, password_hash)
WHERE id = $1;

-- name: console_insert_session
INSERT INTO console_sessions (id_hash, user_id, csrf_token, remote, user_agent, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6));

-- name: console_session
-- A live session and its user: not idle past expires_at, not older than $2 seconds.
SELECT s.csrf_token, s.last_seen_at, s.created_at AS session_created_at,
       u.id, u.name, u.role, u.language, u.time_zone, u.must_change_password, u.created_at,
       u.updated_at, u.last_login_at
FROM console_sessions s JOIN console_users u ON u.id = s.user_id
WHERE s.id_hash = $1 AND s.expires_at > now()
  AND s.created_at > now() - make_interval(secs => $2);

-- name: console_touch_session
UPDATE console_sessions
SET last_seen_at = now(), expires_at = now() + make_interval(secs => $2)
WHERE id_hash = $1;

-- name: console_delete_session
DELETE FROM console_sessions WHERE id_hash = $1;

-- name: console_delete_user_sessions
-- Every session of user $1 but the one whose hash is $2 (NULL: all of them).
DELETE FROM console_sessions
WHERE user_id = $1 AND ($2::bytea IS NULL OR id_hash <> $2);

-- name: console_prune_sessions
DELETE FROM console_sessions
WHERE expires_at < now() OR created_at < now() - make_interval(secs => $1);

-- name: console_messages
-- The message log: newest first, filtered by channel $1, a delivery status $2, created from $3
-- to before $4, and text $5 (an ILIKE pattern over subject, body, account and recipients) or
-- the exact id $6 or provider id $7; $8 rows from offset $9.
SELECT m.id, m.channel, m.account_name, m.subject,
       left(coalesce(m.body_text, m.body_html, ''), 200) AS preview,
       m.ingress, m.created_at, s.recipients, s.statuses
FROM messages m
CROSS JOIN LATERAL (
    SELECT coalesce(sum(n), 0)::int AS recipients,
           coalesce(jsonb_object_agg(status, n), '{}'::jsonb) AS statuses
    FROM (SELECT status, count(*)::int AS n FROM deliveries
          WHERE message_id = m.id GROUP BY status) x
) s
WHERE ($1::text IS NULL OR m.channel = $1)
  AND ($2::text IS NULL
       OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = $2))
  AND ($3::timestamptz IS NULL OR m.created_at >= $3)
  AND ($4::timestamptz IS NULL OR m.created_at < $4)
  AND ($5::text IS NULL
       OR m.subject ILIKE $5 OR m.body_text ILIKE $5 OR m.account_name ILIKE $5
       OR ($6::uuid IS NOT NULL AND m.id = $6)
       OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id
                  AND (d.recipient ILIKE $5 OR d.provider_id = $7)))
ORDER BY m.created_at DESC, m.id DESC
LIMIT $8 OFFSET $9;

-- name: console_overview
-- The home page's numbers: the last 24 hours' messages and deliveries, accounts, the queue.
SELECT
    (SELECT count(*) FROM messages WHERE created_at > now() - interval '24 hours')::int
        AS messages_24h,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
     FROM (SELECT d.status, count(*)::int AS n
           FROM deliveries d JOIN messages m ON m.id = d.message_id
           WHERE m.created_at > now() - interval '24 hours'
           GROUP BY d.status) x) AS deliveries_24h,
    (SELECT count(*) FROM accounts)::int AS accounts,
    (SELECT count(*) FROM deliveries
     WHERE status IN ('queued', 'retrying', 'sending'))::int AS pending,
    (SELECT count(*) FROM sandbox_messages)::int AS sandbox;
