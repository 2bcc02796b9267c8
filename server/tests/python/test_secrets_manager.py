"""`aws_secretsmanager/…` references in the config, read from a real Secrets
Manager API (moto_server): the master key and a provider key, refreshed on a
schedule without a restart."""

import os
import subprocess
import textwrap

import boto3
import httpx
import pytest

from awsmoto import Moto
from conftest import Proc, _binary, wait_until

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto"))
    yield m
    m.stop()


def aws_env(moto_url):
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def secrets_client(moto_url):
    return boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_master_key_and_provider_key_come_from_secrets_manager(moto, mock, tmp_path):
    sm = secrets_client(moto.url)
    sm.create_secret(Name="tollgate/master", SecretString="sk-from-secrets-manager-1")
    sm.create_secret(Name="tollgate/providers", SecretString='{"openai": "sk-upstream-from-sm"}')
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            model_list:
              - model_name: gpt-mock
                litellm_params:
                  model: openai/gpt-4o-mini
                  api_base: {mock.url}/v1
                  api_key: aws_secretsmanager/tollgate/providers#openai
            general_settings:
              master_key: aws_secretsmanager/tollgate/master
            """
        )
    )
    env = dict(os.environ)
    env.pop("TOLLGATE_MASTER_KEY", None)
    env.update(aws_env(moto.url))
    env.update(
        {
            "DATABASE_URL": f"sqlite://{tmp_path}/t.db",
            "TOLLGATE_SECRETS_REFRESH_SECS": "1",
            "TOLLGATE_SITE_ROOT": str(tmp_path / "site"),
        }
    )
    gw = Proc([_binary("TOLLGATE_BIN", "tollgate"), "serve", "--config", str(cfg), "--port", "0"], env=env, name="tollgate-sm")
    try:
        def chat(key):
            return httpx.post(
                gw.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )

        assert chat("sk-from-secrets-manager-1").status_code == 200
        httpx.delete(mock.url + "/__mock/requests")
        assert chat("sk-from-secrets-manager-1").status_code == 200
        seen = httpx.get(mock.url + "/__mock/requests").json()[-1]["headers"]
        assert seen.get("authorization") == "Bearer sk-upstream-from-sm"

        # Rotation: both secrets change; Tollgate follows within the refresh period.
        sm.put_secret_value(SecretId="tollgate/master", SecretString="sk-from-secrets-manager-2")
        sm.put_secret_value(SecretId="tollgate/providers", SecretString='{"openai": "sk-upstream-rotated"}')
        assert wait_until(lambda: chat("sk-from-secrets-manager-2").status_code == 200, timeout=15)
        assert chat("sk-from-secrets-manager-1").status_code == 401
        httpx.delete(mock.url + "/__mock/requests")
        chat("sk-from-secrets-manager-2")
        seen = httpx.get(mock.url + "/__mock/requests").json()[-1]["headers"]
        assert seen.get("authorization") == "Bearer sk-upstream-rotated"
    finally:
        gw.stop()
    assert "sk-from-secrets-manager" not in gw.stderr() and "sk-upstream-rotated" not in gw.stderr()


def test_a_missing_secret_stops_the_start_with_its_reason(moto, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("general_settings:\n  master_key: aws_secretsmanager/does/not/exist\n")
    env = dict(os.environ)
    env.update(aws_env(moto.url))
    r = subprocess.run(
        [_binary("TOLLGATE_BIN", "tollgate"), "check-config", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
    assert "does/not/exist" in r.stderr and "Secrets Manager" in r.stderr
