import time

from app.lib.tokens import issue_token, verify_token
from app.services.views import Viewer

SECRET = "test-secret"


def test_round_trip() -> None:
    token = issue_token(SECRET, Viewer(id=7, display_name="Ada"))
    viewer = verify_token(SECRET, token)
    assert viewer == Viewer(id=7, display_name="Ada", via_token=True)


def test_rejects_tampering_other_secrets_and_expiry() -> None:
    token = issue_token(SECRET, Viewer(id=7, display_name="Ada"))
    payload, _, sig = token.partition(".")
    assert verify_token("another-secret", token) is None
    assert verify_token(SECRET, payload + "x." + sig) is None
    assert verify_token(SECRET, "garbage") is None
    assert verify_token(SECRET, "") is None
    expired = issue_token(SECRET, Viewer(id=7, display_name="Ada"), ttl=-int(time.time()) - 10)
    assert verify_token(SECRET, expired) is None
