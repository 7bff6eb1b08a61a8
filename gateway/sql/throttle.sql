-- throttle: brute-force counters for passwords (gateway/throttle.py).

-- name: auth_attempt
-- Count one attempt on each counter ($2[i], $3[i]) of scope $1 in one statement; a counter whose
-- window of $4 seconds has passed starts again at 1. Rows are locked in key order, so parallel
-- attempts on the same counters queue instead of deadlocking. Returns each counter's attempts
-- (this one included) and the seconds left in its window.
INSERT INTO auth_attempts AS a (scope, name, address, started, attempts)
SELECT $1, k.name, k.address, now(), 1
FROM unnest($2::text[], $3::text[]) AS k (name, address)
ORDER BY k.name, k.address
ON CONFLICT (scope, name, address) DO UPDATE
SET started = CASE WHEN a.started <= now() - make_interval(secs => $4) THEN now()
                   ELSE a.started END,
    attempts = CASE WHEN a.started <= now() - make_interval(secs => $4) THEN 1
                    ELSE a.attempts + 1 END
RETURNING name, address, attempts,
          extract(epoch FROM started + make_interval(secs => $4) - now())::float8 AS remaining;

-- name: auth_release
-- Take one attempt back from each counter ($2[i], $3[i]) of scope $1 (it was refused, or the
-- password was right); with $4, the (user, address) counter is cleared altogether. Rows are
-- locked in the same key order as auth_attempt takes them.
WITH locked AS (
    SELECT a.name, a.address
    FROM auth_attempts AS a
    JOIN unnest($2::text[], $3::text[]) AS k (name, address)
      ON a.name = k.name AND a.address = k.address
    WHERE a.scope = $1
    ORDER BY a.name, a.address
    FOR UPDATE OF a
)
UPDATE auth_attempts AS a
SET attempts = CASE WHEN $4 AND a.name <> '' AND a.address <> '' THEN 0
                    ELSE greatest(a.attempts - 1, 0) END
FROM locked
WHERE a.scope = $1 AND a.name = locked.name AND a.address = locked.address;

-- name: auth_prune
-- Counters whose window of $1 seconds has passed, a bounded number at a time; rows an attempt
-- holds are skipped, so pruning never waits for (or deadlocks with) attempts.
DELETE FROM auth_attempts
WHERE (scope, name, address) IN (
    SELECT scope, name, address FROM auth_attempts
    WHERE started < now() - make_interval(secs => $1)
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
);
