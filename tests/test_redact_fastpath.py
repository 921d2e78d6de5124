"""The redactor's fast path (patterns gated by their literal core, the key=value pattern tried only
where a key word starts, memoised results) masks exactly what every pattern on every text masks:
a pattern added without its trigger, or a trigger that misses a case, fails here."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_gke import redact
from airflow_gke.redact import Redactor


def reference(value: str) -> str:
    """Every pattern on every text, as the redactor did before the fast path."""
    return redact._all_patterns(value)


# Pieces that make the patterns match (and near misses), in any case and order; non-ASCII letters
# that re's IGNORECASE folds onto ASCII ones (long s, Kelvin sign, dotted I).
PIECES = ["postgresql://", "user:", "pw", "@", "host", " ", "=", ":", '"', "'", "Bearer ", "bearer\t",
          "authorization", "Authorization: ", "password", "PASSWD", "pwd", "secret", "token", "access_token",
          "api_key", "apikey", "API-KEY", "fernet_key", "jwt_secret", "private_key", "-----BEGIN RSA PRIVATE KEY-----",
          "-----END RSA PRIVATE KEY-----", "ya29.", "AIza", "abcdefghijklmnopqrstuvwxyz0123456789", "/opt/airflow",
          "\n", "_", "-", ".", ",", ";", "}", "\u017fecret", "api_\u212aey", "\u0130", "<redacted>"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14), st.booleans())
def test_fast_path_equals_every_pattern(pieces, upper):
    text = "".join(pieces)
    if upper:
        text = text.upper()
    redact._TEXT_MEMO.clear()
    assert Redactor().text(text) == reference(text)
    assert Redactor().text(text) == reference(text)   # the memoised answer too


def test_each_pattern_has_a_trigger_in_what_it_masks():
    samples = ["Bearer abcdefghij", "authorization=abc", "password=x", "pwd=x", "secret=x", "token=x",
               "api_key=x", "apikey=x", "fernet_key=x", "private_key=x", "jwt_secret: x", "'access_token': 'x'",
               "-----BEGIN PRIVATE KEY-----x-----END PRIVATE KEY-----", "ya29.abcdefghijklm", "AIza" + "a" * 35]
    assert len(redact._LOG_TRIGGERS) == len(redact._LOG_PATTERNS)
    for s in samples:
        hit = [i for i, (p, r) in enumerate(redact._LOG_PATTERNS) if p.sub(r, s) != s]
        assert hit, s
        for i in hit:
            assert any(t in s.lower() for t in redact._LOG_TRIGGERS[i]), (s, i)
    assert redact._all_patterns("postgresql://a:b@c") != "postgresql://a:b@c"


def test_each_key_word_holds_a_trigger_and_is_masked_with_it():
    # The key=value pattern looks only for the key words of the triggers a text holds.
    assert redact._KV_WORDS_UNGATED == ()
    for w in redact._KV_WORDS:
        assert any(w in ws for ws in redact._KV_WORDS_BY_TRIGGER.values()), w
        for text in (f"{w}=hunter2", f"x {w.upper()}: 'hunter2'", f'{{"{w}":"hunter2","ti":{{"id":"1"}}}}'):
            redact._TEXT_MEMO.clear()
            out = Redactor().text(text)
            assert "hunter2" not in out and out == reference(text), (text, out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES + ["[Errno 13] ", "Permission denied", "ACTED", "PRIVATE"]), max_size=14),
       st.sampled_from(["[Errno 1", "Errno", "Permission", "KEY", "BEGIN", "PRIVATE KEY", "red", "acted", "@", ":",
                        "=", "password=", "ya29.", "pw@", "<", "-", "\u017fecret"]))
def test_a_literal_kept_as_is_is_in_redacted_text_only_where_it_was(pieces, needle):
    # what lets a snapshot skip reading a log that lacks a check's literal (SnapshotSource.lacks)
    text = "".join(pieces)
    redact._TEXT_MEMO.clear()
    if redact.kept_as_is(needle) and needle in Redactor().text(text):
        assert needle in text and needle.encode() in text.encode()
