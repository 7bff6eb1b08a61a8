"""gateway.redact: secrets masked in outcome reasons, and fingerprints for shared keys."""

from __future__ import annotations

from gateway.channel import Failed, Retry, Sent
from gateway.redact import fingerprint, redact, redact_outcome


def test_redact_masks_every_secret_longest_first_and_ignores_short_or_missing_ones():
    text = "GET /gettoken?corpsecret=abcdefgh&k=abcd&token=abcdefgh123"
    assert redact(text, ["abcdefgh", "abcdefgh123", None, "ab"]) == (
        "GET /gettoken?corpsecret=***&k=abcd&token=***"
    )


def test_redact_outcome_masks_reason_and_answer_and_keeps_the_rest():
    retry = Retry(reason="failed: https://x/?key=s3cret-key", after=2.0, code="connect")
    assert redact_outcome(retry, ["s3cret-key"]) == Retry(
        reason="failed: https://x/?key=***", after=2.0, code="connect"
    )
    sent = Sent(provider_id="p", answer="ok s3cret-key")
    assert redact_outcome(sent, ["s3cret-key"]).answer == "ok ***"
    failed = Failed(reason="nothing secret", code="1")
    assert redact_outcome(failed, ["s3cret-key"]) is failed


def test_fingerprint_is_stable_short_and_does_not_contain_the_secret():
    assert fingerprint("s3cret-key") == fingerprint("s3cret-key") != fingerprint("other-key")
    assert len(fingerprint("s3cret-key")) == 16 and "s3cret" not in fingerprint("s3cret-key")
