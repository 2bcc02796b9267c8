"""Console sign-in through OpenID Connect against a real provider: npm
`oidc-provider` set up like an Okta authorization server (issuer path
/oauth2/default, PKCE, a `groups` claim), driven through its own login form."""

import base64
import hashlib
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
            "OKTA_AUDIENCE": "api://tollgate",
        },
        port=gw_port,
    )
    yield gw, idp
    gw.stop()
    idp.stop()


def okta_sign_in(gw_url, login, next_path="/ui/keys"):
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
    page = httpx.get(gw.url + "/ui/login?next=/ui/keys").text
    assert "Sign in with Okta" in page and 'href="/ui/oidc/login?next=/ui/keys"' in page


def test_a_first_okta_sign_in_creates_an_internal_user(okta):
    gw, _ = okta
    b, r = okta_sign_in(gw.url, "alice", next_path="/ui/keys?q=gpt")
    assert r.status_code == 200 and str(r.url) == gw.url + "/ui/keys?q=gpt", (r.url, r.text[:300])
    assert "Sign out" in r.text
    with admin(gw.url) as a:
        info = a.get("/user/info", params={"user_id": "alice"}).json()["user_info"]
    assert info["user_role"] == "internal_user" and info["user_email"] == "alice@example.com"
    # Signing in again finds the same user.
    b2, r = okta_sign_in(gw.url, "alice")
    assert str(r.url) == gw.url + "/ui/keys"
    with admin(gw.url) as a:
        users = [u for u in a.get("/user/list").json()["users"] if u["user_email"] == "alice@example.com"]
    assert len(users) == 1
    b.close()
    b2.close()


def test_the_admin_group_maps_to_proxy_admin(okta):
    gw, _ = okta
    b, r = okta_sign_in(gw.url, "admin-bob")
    assert str(r.url) == gw.url + "/ui/keys"
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
        assert b.get(gw.url + "/ui/keys").status_code in (302, 303)
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


def access_token(issuer, login):
    """A JWT access token for Tollgate's API, as an app gets one: authorization
    code with PKCE for the api-tester client, the resource indicator naming the API."""
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:9/cb"
    params = {
        "client_id": "api-tester",
        "response_type": "code",
        "scope": "openid email",
        "redirect_uri": redirect,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
        "nonce": "n",
        "resource": "api://tollgate",
    }
    with httpx.Client(follow_redirects=False, timeout=30) as b:
        r = b.get(issuer + "/auth", params=params)
        while r.headers.get("location", "").startswith(("/", issuer)):
            r = b.get(urllib.parse.urljoin(str(r.url), r.headers["location"]))
        action = re.search(r'<form[^>]*action="([^"]+)"', r.text).group(1)
        r = b.post(urllib.parse.urljoin(str(r.url), action), data={"prompt": "login", "login": login, "password": "x"})
        while not r.headers["location"].startswith(redirect):
            r = b.get(urllib.parse.urljoin(str(r.url), r.headers["location"]))
        code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["location"]).query)["code"][0]
        t = b.post(
            issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
                "resource": "api://tollgate",
            },
            auth=("api-tester", "api-tester-secret"),
        )
    assert t.status_code == 200, t.text
    token = t.json()["access_token"]
    assert token.count(".") == 2, "the provider must issue a JWT access token"
    return token


def bearer(url, token):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_an_okta_token_creates_its_own_user_then_its_own_key(okta):
    gw, idp = okta
    token = access_token(idp.url, "dave")
    with bearer(gw.url, token) as c:
        # Before its user exists, the token may create that user and nothing else.
        assert c.get("/user/list").status_code == 403
        r = c.post("/user/new", json={"user_id": "someone-else"})
        assert r.status_code == 403 and "its own user" in r.text
        assert c.post("/user/new", json={"user_role": "proxy_admin"}).status_code == 403
        assert c.post("/user/new", json={"max_budget": 1000}).status_code == 403
        r = c.post("/user/new", json={"user_email": "dave@example.com", "auto_create_key": False})
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == "dave" and r.json()["user_role"] == "internal_user"
        # Now it acts as that user: its own keys, never another's, never admin routes.
        r = c.post("/key/generate", json={"key_alias": "dave-laptop"})
        assert r.status_code == 200, r.text
        key = r.json()["key"]
        assert c.post("/key/generate", json={"user_id": "alice"}).status_code == 403
        assert c.get("/user/list").status_code == 403
        assert c.post("/user/new", json={}).status_code == 403
    with bearer(gw.url, key) as k:
        info = k.get("/key/info").json()["info"]
    assert info["user_id"] == "dave"
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_an_admins_okta_token_has_no_admin_rights(okta):
    gw, idp = okta
    with admin(gw.url) as a:
        assert a.post("/user/new", json={"user_id": "admin-frank", "user_role": "proxy_admin"}).status_code == 200
    token = access_token(idp.url, "admin-frank")
    with bearer(gw.url, token) as c:
        assert c.get("/user/list").status_code == 403
        assert c.post("/key/generate", json={}).status_code == 200


def test_forged_and_foreign_tokens_are_refused(okta):
    gw, idp = okta
    token = access_token(idp.url, "erin")
    head, body, sig = token.split(".")
    claims = __import__("json").loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "admin-frank"
    forged_body = base64.urlsafe_b64encode(__import__("json").dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged_body}.{sig}", f"{head}.{body}.{sig[:-4]}AAAA"):
        r = httpx.get(gw.url + "/key/list", headers={"Authorization": f"Bearer {bad}"}, timeout=30)
        assert r.status_code == 401, r.text
        assert "Authentication Error" in r.json()["error"]["message"]
