-- Password attempts (console login, SMTP AUTH), counted before the password is checked and
-- shared by every node (gateway/throttle.py). One row per counter: (scope, user name, address)
-- for a user from an address, (scope, '', address) for an address, (scope, user name, '') for a
-- user from anywhere. Each counts within a fixed window that starts at its first attempt.
CREATE TABLE auth_attempts (
    scope     text NOT NULL,         -- 'console' or 'smtp': the same name is not the same user
    name      text NOT NULL,
    address   text NOT NULL,
    started   timestamptz NOT NULL,
    attempts  integer NOT NULL,
    PRIMARY KEY (scope, name, address)
);
CREATE INDEX auth_attempts_started ON auth_attempts (started);

-- Replaced by auth_attempts: it was read before a failure was written (not atomic), and counted
-- per user name alone, which locked the owner out.
DROP TABLE console_login_failures;
