"""Alerts to a Slack-compatible webhook, and background health checks that
take a failing deployment out of its group, report it at /health, and
alert on the outage and the recovery."""

import os
import textwrap
import time
import uuid

import httpx
import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_SECRET, config_yaml, start_gateway
from receivers import Receiver

H = {"Authorization": f"Bearer {MASTER_KEY}"}


def texts(receiver):
    return [r.json()["text"] for r in receiver.snapshot()]


def wait_text(receiver, needle, timeout=15):
    receiver.wait_until(lambda recs: any(needle in r.json()["text"] for r in recs), timeout=timeout)
    return [t for t in texts(receiver) if needle in t]


def pair_config(mock_url, extra):
    """Two deployments under one name: `hc-flaky` fails while the mock is
    told to, `hc-steady` always answers."""
    return textwrap.dedent(
        f"""
        model_list:
          - model_name: hc-pair
            litellm_params:
              model: openai/hc-flaky
              api_base: {mock_url}/v1
              api_key: {UPSTREAM_SECRET}
            model_info: {{id: hc-flaky-id}}
          - model_name: hc-pair
            litellm_params:
              model: openai/hc-steady
              api_base: {mock_url}/v1
              api_key: {UPSTREAM_SECRET}
            model_info: {{id: hc-steady-id}}
        """
    ) + textwrap.dedent(extra)


def test_budget_alerts_fire_once_each_at_soft_80_and_100_percent(mock, slow_mock, tmp_path):
    with Receiver() as slack:
        gw = start_gateway(
            mock.url,
            slow_mock.url,
            tmp_path,
            config_text=config_yaml(mock.url, slow_mock.url) + "\ngeneral_settings:\n  alerting: [slack]\n",
            extra_env={"SLACK_WEBHOOK_URL": slack.url + "/hook"},
        )
        try:
            key = httpx.post(
                gw.url + "/key/generate",
                headers=H,
                json={"key_alias": "alerted", "max_budget": 0.0003, "soft_budget": 0.00005},
            ).json()["key"]
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
            refused = False
            for i in range(60):
                try:
                    client.chat.completions.create(
                        model="gpt-mock", messages=[{"role": "user", "content": f"spend a little {i} " * 5}]
                    )
                except openai.BadRequestError as e:
                    assert "Budget has been exceeded" in str(e)
                    refused = True
                    break
            assert refused, "the key's budget ran out"
            wait_text(slack, "Budget exceeded")
            soft = wait_text(slack, "Soft budget crossed")
            eighty = wait_text(slack, "Budget at 80%")
            time.sleep(0.5)
            all_texts = texts(slack)
            assert len([t for t in all_texts if "Budget exceeded: key alerted" in t]) == 1
            assert len(soft) == 1 and "key alerted" in soft[0]
            assert len(eighty) == 1 and "key alerted" in eighty[0]
            assert all(r.path == "/hook" and r.headers["content-type"].startswith("application/json") for r in slack.snapshot())
            assert key not in "".join(all_texts), "the key itself is never sent"
        finally:
            assert gw.stop() == 0


def test_health_checks_take_a_failing_deployment_out_and_alert(mock, slow_mock, mock_ctl, tmp_path):
    with Receiver() as slack:
        gw = start_gateway(
            mock.url,
            slow_mock.url,
            tmp_path,
            config_text=pair_config(
                mock.url,
                """
                general_settings:
                  alerting: [slack]
                  alert_types: [outage_alerts]
                  background_health_checks: true
                  health_check_interval: 0.3
                router_settings:
                  num_retries: 0
                """,
            ),
            extra_env={"SLACK_WEBHOOK_URL": slack.url},
        )
        try:
            mock_ctl.post("/__mock/faults", json=[{"status": 503, "match": "hc-flaky", "times": 100000}])
            outage = wait_text(slack, "failed its health check")
            assert "hc-flaky-id" in outage[0] and "hc-pair" in outage[0]

            # /health shows the last scheduled results without calling anything.
            body = httpx.get(gw.url + "/health", headers=H).json()
            assert body["last_checked_at"] and body["health_check_interval"] == 0.3
            assert [e["model_id"] for e in body["unhealthy_endpoints"]] == ["hc-flaky-id"]
            assert [e["model_id"] for e in body["healthy_endpoints"]] == ["hc-steady-id"]

            # Routing sends nothing to the failing deployment (no retry needed).
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
            for _ in range(12):
                raw = client.chat.completions.with_raw_response.create(
                    model="hc-pair", messages=[{"role": "user", "content": "route me"}]
                )
                assert raw.headers["x-litellm-model-id"] == "hc-steady-id"

            # It comes back once its checks pass again.
            mock_ctl.delete("/__mock/faults")
            recovered = wait_text(slack, "passes its health check again")
            assert "hc-flaky-id" in recovered[0]
            seen = set()
            for _ in range(40):
                raw = client.chat.completions.with_raw_response.create(
                    model="hc-pair", messages=[{"role": "user", "content": "route me"}]
                )
                seen.add(raw.headers["x-litellm-model-id"])
                if len(seen) == 2:
                    break
            assert seen == {"hc-flaky-id", "hc-steady-id"}
            # One alert per transition, however many checks failed.
            assert len([t for t in texts(slack) if "failed its health check" in t]) == 1
            # Only the types asked for.
            assert all("health check" in t for t in texts(slack))
        finally:
            assert gw.stop() == 0


def test_cooldowns_slow_calls_and_log_delivery_failures_alert(mock, slow_mock, mock_ctl, tmp_path):
    with Receiver() as slack, Receiver() as hook:
        hook.fail_next(1000, 400)
        gw = start_gateway(
            mock.url,
            slow_mock.url,
            tmp_path,
            config_text=pair_config(
                mock.url,
                """
                litellm_settings:
                  success_callback: [webhook]
                general_settings:
                  alerting: [slack]
                  alerting_threshold: 0.3
                router_settings:
                  allowed_fails: 0
                  cooldown_time: 30
                  num_retries: 2
                """,
            ),
            extra_env={
                "SLACK_WEBHOOK_URL": slack.url,
                "GENERIC_LOGGER_ENDPOINT": hook.url + "/logs",
                "TOLLGATE_CALLBACK_FLUSH_SECS": "0.2",
            },
        )
        try:
            mock_ctl.post("/__mock/faults", json=[{"status": 500, "match": "hc-flaky", "times": 100000}])
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
            for _ in range(20):
                client.chat.completions.create(model="hc-pair", messages=[{"role": "user", "content": "x"}])
                if any("cooling down" in t for t in texts(slack)):
                    break
            cool = wait_text(slack, "cooling down")
            assert "hc-flaky-id" in cool[0] and "30s" in cool[0]

            mock_ctl.delete("/__mock/faults")
            mock_ctl.post("/__mock/faults", json=[{"delay_ms": 600, "match": "hc-steady"}])
            client.chat.completions.create(model="hc-pair", messages=[{"role": "user", "content": "slow one"}])
            slow = wait_text(slack, "Slow call to hc-pair")
            assert "hc-steady-id" in slow[0]

            # The webhook refuses every batch (400: not worth a retry).
            failed = wait_text(slack, "log destination did not take")
            assert "webhook" in failed[0] and "HTTP 400" in failed[0]
            stats = httpx.get(gw.url + "/active/callbacks", headers=H).json()["destinations"][0]
            assert stats["failed"] >= 1 and stats["delivered"] == 0 and "HTTP 400" in stats["last_error"]
        finally:
            assert gw.stop() == 0


def test_slack_alerting_needs_its_webhook(mock, slow_mock, tmp_path):
    with pytest.raises(RuntimeError) as e:
        start_gateway(
            mock.url,
            slow_mock.url,
            tmp_path,
            config_text=config_yaml(mock.url, slow_mock.url) + "\ngeneral_settings:\n  alerting: [slack]\n",
        )
    assert "SLACK_WEBHOOK_URL" in str(e.value)


@pytest.mark.skipif(not os.environ.get("TOLLGATE_TEST_REDIS_URL"), reason="needs Redis (make test-python)")
def test_processes_sharing_redis_send_one_alert_per_outage(mock, slow_mock, mock_ctl, tmp_path):
    env = {
        "REDIS_URL": os.environ["TOLLGATE_TEST_REDIS_URL"],
        "TOLLGATE_REDIS_PREFIX": f"alerts-{uuid.uuid4().hex}:",
    }
    section = """
    general_settings:
      alerting: [slack]
      background_health_checks: true
      health_check_interval: 0.3
    router_settings:
      num_retries: 0
    """
    with Receiver() as slack:
        env["SLACK_WEBHOOK_URL"] = slack.url
        gws = []
        try:
            for name in ["a", "b"]:
                (tmp_path / name).mkdir()
                gws.append(
                    start_gateway(
                        mock.url, slow_mock.url, tmp_path / name, config_text=pair_config(mock.url, section), extra_env=env
                    )
                )
            mock_ctl.post("/__mock/faults", json=[{"status": 503, "match": "hc-flaky", "times": 100000}])
            wait_text(slack, "failed its health check")
            time.sleep(1.5)  # several more checks in each process
            assert len([t for t in texts(slack) if "failed its health check" in t]) == 1
            # Both processes route around it.
            for gw in gws:
                client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
                for _ in range(6):
                    raw = client.chat.completions.with_raw_response.create(
                        model="hc-pair", messages=[{"role": "user", "content": "route me"}]
                    )
                    assert raw.headers["x-litellm-model-id"] == "hc-steady-id"
        finally:
            for gw in gws:
                gw.stop()


def test_a_test_alert_can_be_sent(mock, slow_mock, tmp_path):
    with Receiver() as slack:
        gw = start_gateway(
            mock.url,
            slow_mock.url,
            tmp_path,
            config_text=config_yaml(mock.url, slow_mock.url)
            + "\ngeneral_settings:\n  alerting: [slack]\n  alert_types: [budget_alerts]\n",
            extra_env={"SLACK_WEBHOOK_URL": slack.url},
        )
        try:
            r = httpx.get(gw.url + "/health/services", params={"service": "slack"}, headers=H)
            assert r.status_code == 200, r.text
            assert wait_text(slack, "test alert")
            key = httpx.post(gw.url + "/key/generate", headers=H, json={}).json()["key"]
            r = httpx.get(gw.url + "/health/services", params={"service": "slack"}, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 403
        finally:
            assert gw.stop() == 0
