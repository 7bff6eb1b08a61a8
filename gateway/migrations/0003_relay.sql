-- The SMTP relay: its users (argon2 hashes), the access list it shares with the HTTP API, and
-- the original MIME of messages that came in as e-mail (sent on as is by the e-mail channel).

CREATE TABLE relay_users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,               -- argon2id, PHC string; never the password
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);

-- 访问控制: an empty table means no address restriction (API keys and SMTP AUTH alone).
CREATE TABLE access_rules (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    cidr        cidr NOT NULL,                  -- a bare IP is stored as /32 (or /128)
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Written in the same transaction as its message (the group commit), so a message that needs
-- its original MIME never exists without it.
CREATE TABLE message_raw (
    message_id  uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    data        bytea NOT NULL
);

-- The bounce sweep looks for recent permanent failures.
CREATE INDEX deliveries_failed_recent ON deliveries (updated_at)
    WHERE status IN ('failed', 'undelivered');
