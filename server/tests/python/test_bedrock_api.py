"""The Bedrock runtime surface, driven by boto3's bedrock-runtime client exactly
as the deployment guide sets it up (endpoint_url=…/bedrock, unsigned, a bearer
key added to every request): converse and converse_stream against OpenAI-,
Anthropic- and Bedrock-backed model groups, tools both ways, images, and
errors that raise boto3's own exception classes."""

import base64
import uuid

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import EventStreamError

from conftest import MASTER_KEY, wait_until

GROUPS = ["gpt-mock", "claude-mock", "bedrock-mock"]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def client(gateway, key=MASTER_KEY):
    c = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway.url + "/bedrock",
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1, "mode": "standard"}),
    )

    def add_key(request, **kwargs):
        request.headers["Authorization"] = f"Bearer {key}"

    c.meta.events.register("request-created.*", add_key)
    return c


def user(text):
    return [{"role": "user", "content": [{"text": text}]}]


@pytest.mark.parametrize("model", GROUPS)
def test_converse_answers_from_every_provider_family(gateway, model):
    r = client(gateway).converse(
        modelId=model,
        messages=user("hello from boto3"),
        system=[{"text": "be brief"}],
        inferenceConfig={"maxTokens": 64, "temperature": 0.1},
    )
    text = r["output"]["message"]["content"][0]["text"]
    assert "hello from boto3" in text
    assert r["output"]["message"]["role"] == "assistant"
    assert r["stopReason"] == "end_turn"
    assert r["usage"]["inputTokens"] > 0 and r["usage"]["outputTokens"] > 0
    assert r["usage"]["totalTokens"] == r["usage"]["inputTokens"] + r["usage"]["outputTokens"]
    assert r["metrics"]["latencyMs"] >= 0
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert r["ResponseMetadata"]["RequestId"]
    assert headers["x-tollgate-model"] == model


@pytest.mark.parametrize("model", GROUPS)
def test_converse_stream_sends_event_stream_frames(gateway, model):
    r = client(gateway).converse_stream(modelId=model, messages=user("stream to boto3"))
    events = list(r["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and events[0]["messageStart"]["role"] == "assistant"
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert "stream to boto3" in text
    assert "messageStop" in kinds and events[kinds.index("messageStop")]["messageStop"]["stopReason"] == "end_turn"
    assert kinds[-1] == "metadata"
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0
    assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"


TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather for a city",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
            }
        }
    ],
    "toolChoice": {"any": {}},
}


@pytest.mark.parametrize("model", GROUPS)
def test_tools_both_ways(gateway, model):
    c = client(gateway)
    first = c.converse(modelId=model, messages=user("weather in Paris"), toolConfig=TOOLS)
    assert first["stopReason"] == "tool_use"
    (use,) = [b["toolUse"] for b in first["output"]["message"]["content"] if "toolUse" in b]
    assert use["name"] == "get_weather" and isinstance(use["input"], dict)
    follow = user("weather in Paris") + [
        first["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"temp_c": 21}}]}}]},
    ]
    second = c.converse(modelId=model, messages=follow, toolConfig=TOOLS)
    assert second["stopReason"] == "end_turn"
    assert second["output"]["message"]["content"][0]["text"]

    streamed = list(c.converse_stream(modelId=model, messages=user("weather in Oslo"), toolConfig=TOOLS)["stream"])
    starts = [e["contentBlockStart"]["start"]["toolUse"] for e in streamed if "contentBlockStart" in e]
    assert starts and starts[0]["name"] == "get_weather" and starts[0]["toolUseId"]
    args = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in streamed
        if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"]
    )
    assert args.startswith("{")
    stop = [e["messageStop"]["stopReason"] for e in streamed if "messageStop" in e]
    assert stop == ["tool_use"]


def test_images_are_accepted(gateway):
    r = client(gateway).converse(
        modelId="gpt-mock",
        messages=[{"role": "user", "content": [{"text": "what is this"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]}],
    )
    assert r["output"]["message"]["content"][0]["text"]


def test_model_ids_may_be_bedrock_ids_and_arns(gateway):
    c = client(gateway)
    by_id = c.converse(modelId="us.anthropic.claude-3-5-sonnet-20241022-v2:0", messages=user("by id"))
    assert by_id["ResponseMetadata"]["HTTPHeaders"]["x-tollgate-model"] == "bedrock-mock"
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    by_arn = c.converse(modelId=arn, messages=user("by arn"))
    assert by_arn["ResponseMetadata"]["HTTPHeaders"]["x-tollgate-model"] == "bedrock-arn"


def test_errors_raise_boto3_exceptions(gateway):
    c = client(gateway)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.converse(modelId="no-such-model", messages=user("x"))
    with pytest.raises(c.exceptions.ValidationException) as bad:
        c.converse(modelId="gpt-mock", messages=[{"role": "user", "content": [{"video": {"format": "mp4", "source": {"bytes": b"x"}}}]}])
    assert "messages[0].content[0]" in str(bad.value)
    with pytest.raises(c.exceptions.ThrottlingException):
        c.converse(modelId="always-429", messages=user("x"))
    with pytest.raises(c.exceptions.ModelErrorException):
        c.converse(modelId="always-500", messages=user("x"))
    with pytest.raises(c.exceptions.ThrottlingException):
        c.converse_stream(modelId="always-429", messages=user("x"))
    denied = client(gateway, key="sk-not-a-key")
    with pytest.raises(denied.exceptions.AccessDeniedException):
        denied.converse(modelId="gpt-mock", messages=user("x"))


def test_keys_budgets_and_spend_apply(gateway, http):
    g = http.post("/key/generate", json={"models": ["gpt-mock"], "max_budget": 1000}).json()
    c = client(gateway, g["key"])
    c.converse(modelId="gpt-mock", messages=user("counted"))
    with pytest.raises(c.exceptions.AccessDeniedException) as refused:
        c.converse(modelId="claude-mock", messages=user("not allowed"))
    assert "claude-mock" in str(refused.value)

    def rows():
        r = http.get("/spend/logs", params={"api_key": g["key"]}).json()
        return [x for x in r if x["model_group"] == "gpt-mock"]

    assert wait_until(rows)
    assert rows()[0]["total_tokens"] > 0
    spent = http.post("/key/generate", json={"max_budget": 0}).json()["key"]
    with pytest.raises(client(gateway, spent).exceptions.ServiceQuotaExceededException):
        client(gateway, spent).converse(modelId="gpt-mock", messages=user("x"))


def test_unknown_operations_answer_in_aws_shape(gateway):
    r = httpx.post(
        gateway.url + "/bedrock/model/gpt-mock/no-such-op",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={},
    )
    assert r.status_code == 404
    assert r.headers["x-amzn-errortype"].startswith("UnknownOperationException")
    assert r.json()["message"]
    r = httpx.post(
        gateway.url + "/bedrock/model/gpt-mock/converse",
        headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 400 and r.headers["x-amzn-errortype"].startswith("ValidationException")
    assert str(uuid.UUID(r.headers["x-request-id"]))


def test_a_failure_mid_stream_is_an_exception_frame(gateway, mock_ctl):
    mock_ctl.post("/__mock/faults", json=[{"kind": "stream_error_after", "chunks": 3, "match": "retry-me"}])
    r = client(gateway).converse_stream(modelId="retry-me", messages=user("one two three four five six"))
    got = []
    with pytest.raises(EventStreamError) as failed:
        for e in r["stream"]:
            got.append(e)
    assert got and "messageStart" in got[0]
    assert failed.value.response["Error"]["Code"] == "modelStreamErrorException"


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_unmodified_boto3_with_a_bearer_token_over_https(mock, slow_mock, tmp_path, monkeypatch):
    from conftest import start_gateway

    cert, key = self_signed(tmp_path)
    gw = start_gateway(mock.url, slow_mock.url, tmp_path, {"TOLLGATE_TLS_CERT": str(cert), "TOLLGATE_TLS_KEY": str(key)})
    try:
        assert gw.url.startswith("https://")
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", MASTER_KEY)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(k, raising=False)
        c = boto3.client("bedrock-runtime", endpoint_url=gw.url + "/bedrock", region_name="us-east-1", verify=str(cert))
        r = c.converse(modelId="claude-mock", messages=user("over https"))
        assert "over https" in r["output"]["message"]["content"][0]["text"]
        events = list(c.converse_stream(modelId="gpt-mock", messages=user("streamed over https"))["stream"])
        assert "metadata" in events[-1]
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "sk-wrong")
        wrong = boto3.client("bedrock-runtime", endpoint_url=gw.url + "/bedrock", region_name="us-east-1", verify=str(cert))
        with pytest.raises(wrong.exceptions.AccessDeniedException):
            wrong.converse(modelId="claude-mock", messages=user("x"))
    finally:
        assert gw.stop() == 0
