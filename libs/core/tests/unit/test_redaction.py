from keel_core.redaction import REDACTED, audit_arguments, redact


def test_secret_keys_are_masked_at_any_depth() -> None:
    cleaned = redact(
        {
            "to": "a@b.c",
            "Password": "hunter2",
            "auth": {"API_KEY": "sk-1", "access_token": "t", "note": "keep"},
            "items": [{"client_secret": "s"}, 3],
        }
    )
    assert cleaned == {
        "to": "a@b.c",
        "Password": REDACTED,
        "auth": {"API_KEY": REDACTED, "access_token": REDACTED, "note": "keep"},
        "items": [{"client_secret": REDACTED}, 3],
    }


def test_text_that_is_not_json_is_kept_only_as_size_and_hash() -> None:
    kept = audit_arguments("{token: abc")
    assert kept["_omitted"] == "not JSON"
    assert kept["chars"] == 11
    assert len(kept["sha256"]) == 64
    assert "abc" not in str(kept)


def test_oversized_arguments_are_summarised() -> None:
    kept = audit_arguments('{"text": "%s"}' % ("x" * 10_000))
    assert kept["_omitted"] == "too large to keep"


def test_empty_arguments() -> None:
    assert audit_arguments("") == {}
