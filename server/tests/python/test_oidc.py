"""Console sign-in through OpenID Connect against a real provider: npm
`oidc-provider` set up like an Okta authorization server (issuer path
/oauth2/default, PKCE, a `groups` claim), driven through its own login form."""

import os
import pathlib
import re
import shutil
import urllib.parse

import httpx
import pytest

from conftest import MASTER_KEY, Proc, free_port, start_gateway

ROOT = pathlib.Path(__file__).resolve().parents[3]
PROVIDER = ROOT / "end2end" / "oidc" / "provider.mjs"


@pytest.fixture(scope="module")
def okta(mock, slow_mock, tmp_path_factory):
    if not (ROOT / "end2end" / "node_modules" / "oidc-provider").is_dir() or not shutil.which("node"):
        pytest.fail("npm oidc-provider is not installed (make test-deps installs it)")
    gw_port, idp_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        {
            "OIDC_PORT": str(idp_port),
            "OIDC_CLIENT_ID": "tollgate-console",
            "OIDC_CLIENT_SECRET": "console-secret",
            "OIDC_REDIRECT_URIS": f"http://127.0.0.1:{gw_port}/ui/oidc/callback",
        }
    )
    idp = Proc(["node", str(PROVIDER)], env=env, name="oidc-provider")
    gw = start_gateway(
        mock.url,
        slow_mock.url,
        tmp_path_factory.mktemp("tollgate-oidc"),
        extra_env={
            "OKTA_ISSUER": idp.url,
            "OKTA_CLIENT_ID": "tollgate-console",
            "OKTA_CLIENT_SECRET": "console-secret",
            "OIDC_ADMIN_GROUP": "tollgate-admins",
        },
        port=gw_port,
    )
    yield gw, idp
    gw.stop()
    idp.stop()


def okta_sign_in(gw_url, login, next_path="/ui/models"):
    """Signs in through the provider's own login form; returns the browser and its last response."""
    b = httpx.Client(follow_redirects=True, timeout=30, headers={"x-forwarded-for": f"10.3.0.{len(login)}"})
    r = b.get(gw_url + "/ui/oidc/login", params={"next": next_path}, follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    auth = urllib.parse.urlparse(r.headers["location"])
    q = urllib.parse.parse_qs(auth.query)
    # Authorization code with PKCE (S256), a state and a nonce.
    assert auth.path.endswith("/oauth2/default/auth")
    assert q["response_type"] == ["code"] and q["code_challenge_method"] == ["S256"]
    assert q["code_challenge"][0] and q["state"][0] and q["nonce"][0]
    assert set(q["scope"][0].split()) >= {"openid", "email", "groups"}
    page = b.get(r.headers["location"])
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1)
    login_url = urllib.parse.urljoin(str(page.url), action)
    r = b.post(login_url, data={"prompt": "login", "login": login, "password": "any"})
    return b, r


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def test_the_sign_in_page_offers_okta(okta):
    gw, _ = okta
    page = httpx.get(gw.url + "/ui/login?next=/ui/models").text
    assert "Sign in with Okta" in page and 'href="/ui/oidc/login?next=/ui/models"' in page


def test_a_first_okta_sign_in_creates_an_internal_user(okta):
    gw, _ = okta
    b, r = okta_sign_in(gw.url, "alice", next_path="/ui/models?q=gpt")
    assert r.status_code == 200 and str(r.url) == gw.url + "/ui/models?q=gpt", (r.url, r.text[:300])
    assert "Sign out" in r.text
    with admin(gw.url) as a:
        info = a.get("/user/info", params={"user_id": "alice"}).json()["user_info"]
    assert info["user_role"] == "internal_user" and info["user_email"] == "alice@example.com"
    # Signing in again finds the same user.
    b2, r = okta_sign_in(gw.url, "alice")
    assert str(r.url) == gw.url + "/ui/models"
    with admin(gw.url) as a:
        users = [u for u in a.get("/user/list").json()["users"] if u["user_email"] == "alice@example.com"]
    assert len(users) == 1
    b.close()
    b2.close()


def test_the_admin_group_maps_to_proxy_admin(okta):
    gw, _ = okta
    b, r = okta_sign_in(gw.url, "admin-bob")
    assert str(r.url) == gw.url + "/ui/models"
    with admin(gw.url) as a:
        info = a.get("/user/info", params={"user_id": "admin-bob"}).json()["user_info"]
    assert info["user_role"] == "proxy_admin"
    b.close()


def test_a_callback_with_another_state_or_no_sign_in_is_refused(okta):
    gw, _ = okta
    with httpx.Client(follow_redirects=False, timeout=30) as b:
        # No sign-in was started in this browser.
        r = b.get(gw.url + "/ui/oidc/callback", params={"code": "x", "state": "y"})
        assert r.headers["location"].startswith("/ui/login?error=sso")
        # Started, but the state coming back is not this browser's.
        b.get(gw.url + "/ui/oidc/login")
        r = b.get(gw.url + "/ui/oidc/callback", params={"code": "x", "state": "forged"})
        assert r.headers["location"].startswith("/ui/login?error=sso")
        assert b.get(gw.url + "/ui/models").status_code in (302, 303)
    page = httpx.get(gw.url + "/ui/login?error=sso").text
    assert "single sign-on did not succeed" in page


def test_a_blocked_user_cannot_sign_in_through_okta(okta):
    gw, _ = okta
    b, _ = okta_sign_in(gw.url, "carol")
    b.close()
    with admin(gw.url) as a:
        assert a.post("/user/update", json={"user_id": "carol", "blocked": True}).status_code == 200
    b, r = okta_sign_in(gw.url, "carol")
    assert "/ui/login" in str(r.url) and "error=invalid" in str(r.url)
    b.close()
