-- The spine: API keys, sender accounts, messages, deliveries (the queue), events, sandbox.

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    key_hash    bytea NOT NULL UNIQUE,       -- sha256 of the key; the key itself is never stored
    prefix      text NOT NULL,               -- first characters, to recognise a key in lists
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE accounts (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL,
    name        text NOT NULL UNIQUE,
    sandbox     boolean NOT NULL DEFAULT false,
    config      jsonb NOT NULL DEFAULT '{}',  -- public fields only
    secrets     bytea,                        -- Fernet-encrypted JSON of the secret fields
    revision    integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id                 uuid PRIMARY KEY,
    channel            text NOT NULL,
    account_id         bigint REFERENCES accounts (id) ON DELETE SET NULL,
    account_name       text NOT NULL,
    subject            text,
    body_text          text,
    body_html          text,
    variables          jsonb NOT NULL DEFAULT '{}',
    ingress            text NOT NULL,          -- http, smtp, console, scheduler ...
    ingress_detail     jsonb NOT NULL DEFAULT '{}',
    idempotency_scope  text,
    idempotency_key    text,
    request_hash       bytea,
    send_at            timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (idempotency_scope, idempotency_key)
);
CREATE INDEX messages_created ON messages (created_at);

-- The queue. While a delivery is queued or retrying, due_at is when it may next be tried;
-- while it is sending, due_at is when the lease expires and another node may take it over.
CREATE TABLE deliveries (
    id           uuid PRIMARY KEY,
    message_id   uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient    text NOT NULL,
    status       text NOT NULL
                 CHECK (status IN ('queued', 'sending', 'retrying', 'sent', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL,
    leased_by    text,
    provider_id  text,
    units        integer,
    last_code    text,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX deliveries_due ON deliveries (due_at)
    WHERE status IN ('queued', 'retrying', 'sending');
CREATE INDEX deliveries_message ON deliveries (message_id);

CREATE TABLE delivery_events (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind         text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX delivery_events_delivery ON delivery_events (delivery_id, id);

-- What sandbox accounts "sent": recorded instead of handed to a provider.
CREATE TABLE sandbox_messages (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL UNIQUE REFERENCES deliveries (id) ON DELETE CASCADE,
    message_id   uuid NOT NULL,
    channel      text NOT NULL,
    account      text NOT NULL,
    recipient    text NOT NULL,
    subject      text,
    body_text    text,
    body_html    text,
    variables    jsonb NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
