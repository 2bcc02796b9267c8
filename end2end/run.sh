#!/usr/bin/env bash
# Runs the Playwright suite against the real tollgate binary, with the mock
# upstreams behind it. Binaries from TOLLGATE_BIN and MOCK_BIN; the console
# bundle from TOLLGATE_SITE_ROOT (default ./site, built by `make site`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts "$@" in the background and sets started_url from its "listening on"
# line. Called in this shell, not in $(...): a subshell's pids would be lost
# and the servers left running after the suite.
start() {
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 1 600); do
    if grep -q "listening on " "$work/$name.out" 2>/dev/null; then
      started_url=$(sed -n 's/.*listening on //p' "$work/$name.out" | head -n1)
      return 0
    fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.err" >&2; return 1
}

start mock "$MOCK_BIN" --port 0
mock=$started_url
cat > "$work/config.yaml" <<YAML
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_base: "$mock/v1", api_key: sk-up}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-eu, api_base: "$mock", api_key: sk-up, api_version: "2024-06-01", weight: 2}
    model_info: {base_model: gpt-4o}
  - model_name: claude-3-5-sonnet
    litellm_params: {model: anthropic/claude-3-5-sonnet-20240620, api_base: "$mock", api_key: sk-up}
  - model_name: claude-3-5-sonnet
    litellm_params:
      model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0
      aws_bedrock_runtime_endpoint: "$mock"
      aws_access_key_id: AKIDE2E
      aws_secret_access_key: e2e
      aws_region_name: us-east-1
  - model_name: text-embedding-3-small
    litellm_params: {model: openai/text-embedding-3-small, api_base: "$mock/v1", api_key: sk-up}
    model_info: {mode: embedding}
  - model_name: demo
    litellm_params: {model: demo/tollgate-demo}
guardrails:
  - guardrail_name: mask-emails
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]
YAML
export TOLLGATE_MASTER_KEY=sk-e2e-master
# The stand-in for Okta (npm oidc-provider) needs the console's callback URL
# before it starts, so Tollgate's port is chosen first.
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port)
start oidc env OIDC_PORT=0 OIDC_CLIENT_ID=tollgate-e2e OIDC_CLIENT_SECRET=e2e-secret \
  OIDC_REDIRECT_URIS="http://127.0.0.1:$port/ui/oidc/callback" node "$here/oidc/provider.mjs"
issuer=$started_url
start tollgate env DATABASE_URL="sqlite://$work/e2e.db" TOLLGATE_SITE_ROOT="${TOLLGATE_SITE_ROOT:-$root/site}" \
  OKTA_ISSUER="$issuer" OKTA_CLIENT_ID=tollgate-e2e OKTA_CLIENT_SECRET=e2e-secret OIDC_ADMIN_GROUP=tollgate-admins \
  AWS_EC2_METADATA_DISABLED=true "$TOLLGATE_BIN" serve --port "$port" --config "$work/config.yaml"
url=$started_url

cd "$here"
TOLLGATE_URL="$url" EXPECTED_MODELS="gpt-4o,claude-3-5-sonnet,text-embedding-3-small,demo" npx playwright test
