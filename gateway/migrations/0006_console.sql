-- The web console (/admin): its users (argon2 hashes), their sessions, and failed logins.

CREATE TABLE console_users (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL UNIQUE,
    password_hash         text NOT NULL,        -- argon2id, PHC string; never the password
    role                  text NOT NULL CHECK (role IN ('admin', 'operator', 'readonly')),
    language              text NOT NULL DEFAULT 'zh-CN',
    time_zone             text NOT NULL DEFAULT 'Asia/Shanghai',
    must_change_password  boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    last_login_at         timestamptz
);

-- A session is a random id in an HttpOnly cookie; only its SHA-256 is stored, so reading this
-- table does not let anyone into the console. The CSRF token is per session.
CREATE TABLE console_sessions (
    id_hash       bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    remote        text,
    user_agent    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Failed logins, counted per user name and per address to slow down guessing (all nodes).
CREATE TABLE console_login_failures (
    id      bigserial PRIMARY KEY,
    name    text NOT NULL,
    remote  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_login_failures_name ON console_login_failures (name, at);
CREATE INDEX console_login_failures_remote ON console_login_failures (remote, at);
