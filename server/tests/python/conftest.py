"""Starts the real mock upstreams and the real `tollgate` binary (port 0, fresh
store) for the SDK-driven tests. Binaries come from TOLLGATE_BIN and MOCK_BIN
(the Makefile builds them)."""

import os
import pathlib
import signal
import subprocess
import tempfile
import textwrap
import threading
import time

import httpx
import openai
import pytest

MASTER_KEY = "sk-test-master-0123456789"
# The upstream credential: it must never reach a client, an error body or a log line.
UPSTREAM_SECRET = "sk-upstream-SECRET-do-not-leak-42"
AWS_SECRET = "aws-secret-DO-NOT-LEAK-7"


def _binary(env_name: str, name: str) -> str:
    path = os.environ.get(env_name)
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/tollgate/target"))
    return str(pathlib.Path(target) / "release" / name)


class Proc:
    """A child process whose first stdout line announces its URL."""

    def __init__(self, args, env=None, name="proc"):
        self.name = name
        self.log_path = pathlib.Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.url = self._read_url()

    def _read_url(self) -> str:
        result = {}

        def read():
            line = self.p.stdout.readline().decode()
            result["line"] = line

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(120)
        line = result.get("line", "")
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{self.stderr()}")
        return line.strip().split("listening on ", 1)[1]

    def stderr(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=20) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.flush()
        return self.p.returncode


def config_yaml(mock: str, slow_mock: str) -> str:
    return textwrap.dedent(
        f"""
        model_list:
          - model_name: gpt-mock
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
          - model_name: azure-mock
            litellm_params:
              model: azure/my-deployment
              api_base: {mock}
              api_key: {UPSTREAM_SECRET}
              api_version: "2024-06-01"
          - model_name: claude-mock
            litellm_params:
              model: anthropic/claude-3-5-haiku-latest
              api_base: {mock}
              api_key: {UPSTREAM_SECRET}
          - model_name: bedrock-mock
            litellm_params:
              model: bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0
              aws_bedrock_runtime_endpoint: {mock}
              aws_access_key_id: AKIDTOLLGATETEST
              aws_secret_access_key: {AWS_SECRET}
              aws_region_name: us-west-2
          - model_name: bedrock-arn
            litellm_params:
              model: bedrock/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123
              aws_bedrock_runtime_endpoint: {mock}
              aws_access_key_id: AKIDTOLLGATETEST
              aws_secret_access_key: {AWS_SECRET}
              aws_region_name: us-east-1
          - model_name: demo
            litellm_params:
              model: demo/tollgate-demo
              demo_chunk_delay_ms: 0
          - model_name: embed-openai
            litellm_params:
              model: openai/text-embedding-3-small
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
            model_info: {{mode: embedding}}
          - model_name: embed-titan
            litellm_params:
              model: bedrock/amazon.titan-embed-text-v2:0
              aws_bedrock_runtime_endpoint: {mock}
              aws_access_key_id: AKIDTOLLGATETEST
              aws_secret_access_key: {AWS_SECRET}
              aws_region_name: us-east-1
            model_info: {{mode: embedding}}
          - model_name: embed-cohere
            litellm_params:
              model: bedrock/cohere.embed-english-v3
              aws_bedrock_runtime_endpoint: {mock}
              aws_access_key_id: AKIDTOLLGATETEST
              aws_secret_access_key: {AWS_SECRET}
              aws_region_name: us-east-1
            model_info: {{mode: embedding}}
          - model_name: always-429
            litellm_params:
              model: openai/fail-429
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
          - model_name: always-500
            litellm_params:
              model: openai/fail-500
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
          - model_name: claude-500
            litellm_params:
              model: anthropic/claude-fail-500
              api_base: {mock}
              api_key: {UPSTREAM_SECRET}
          - model_name: bedrock-503
            litellm_params:
              model: bedrock/anthropic.claude-fail-503
              aws_bedrock_runtime_endpoint: {mock}
              aws_access_key_id: AKIDTOLLGATETEST
              aws_secret_access_key: {AWS_SECRET}
              aws_region_name: us-east-1
          - model_name: flaky
            litellm_params:
              model: openai/fail-503
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
          - model_name: retry-me
            litellm_params:
              model: openai/retry-me
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
          - model_name: slow-stream
            litellm_params:
              model: openai/slow-stream
              api_base: {slow_mock}/v1
              api_key: {UPSTREAM_SECRET}
          - model_name: timeout-model
            litellm_params:
              model: openai/slow-3000ms
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
              timeout: 0.5
          - model_name: priced-mock
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
            model_info:
              input_cost_per_token: 0.001
              output_cost_per_token: 0.002
              access_groups: ["beta-models"]
          - model_name: no-usage
            litellm_params:
              model: openai/gpt-4o-mini-no-usage
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
            model_info:
              input_cost_per_token: 0.001
              output_cost_per_token: 0.002
          - model_name: tiny-context
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {mock}/v1
              api_key: {UPSTREAM_SECRET}
            model_info:
              max_input_tokens: 120
          - model_name: unreachable
            litellm_params:
              model: openai/nothing-listens
              api_base: http://127.0.0.1:9/v1
              api_key: {UPSTREAM_SECRET}
        servers:
          - name: vllm-a
            url: {mock}
            token: sk-server-token-XYZ
            default_model: served-default
        router_settings:
          num_retries: 1
          fallbacks: [{{"flaky": ["gpt-mock"]}}, {{"bedrock-503": ["claude-mock"]}}]
          context_window_fallbacks: [{{"claude-mock": ["demo"]}}, {{"bedrock-mock": ["demo"]}}, {{"gpt-mock": ["demo"]}}]
        """
    )


@pytest.fixture(scope="session")
def mock():
    p = Proc([_binary("MOCK_BIN", "mock-upstream"), "--port", "0"], name="mock")
    yield p
    p.stop()


@pytest.fixture(scope="session")
def slow_mock():
    p = Proc(
        [_binary("MOCK_BIN", "mock-upstream"), "--port", "0", "--inter-chunk-delay-ms", "100"],
        name="slow-mock",
    )
    yield p
    p.stop()


def start_gateway(
    mock_url: str, slow_url: str, workdir: pathlib.Path, extra_env=None, config_text=None, port=0
) -> Proc:
    cfg = workdir / "config.yaml"
    cfg.write_text(config_text if config_text is not None else config_yaml(mock_url, slow_url))
    env = dict(os.environ)
    env.update(
        {
            "TOLLGATE_MASTER_KEY": MASTER_KEY,
            "DATABASE_URL": os.environ.get("TOLLGATE_TEST_DATABASE_URL")
            or f"sqlite://{workdir}/tollgate.db",
            "TOLLGATE_SITE_ROOT": os.environ.get("TOLLGATE_SITE_ROOT", str(workdir / "site")),
            "AWS_EC2_METADATA_DISABLED": "true",
            "TOLLGATE_LOG": "info,tollgate=debug",
        }
    )
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "OPENAI_API_KEY"):
        env.pop(k, None)
    env.update(extra_env or {})
    return Proc(
        [_binary("TOLLGATE_BIN", "tollgate"), "serve", "--config", str(cfg), "--port", str(port)],
        env=env,
        name="tollgate",
    )


@pytest.fixture(scope="session")
def gateway(mock, slow_mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tollgate")
    p = start_gateway(mock.url, slow_mock.url, workdir)
    p.workdir = workdir
    yield p
    p.stop()


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as c:
        yield c


@pytest.fixture
def mock_ctl(mock):
    with httpx.Client(base_url=mock.url, timeout=10) as c:
        c.delete("/__mock/faults")
        yield c
        c.delete("/__mock/faults")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return pred()
