#!/usr/bin/env bash
# Deploy smoke test for a real AWS account: deploys the stack under a name of its own,
# uploads a 30-second spoken episode, waits for its EpisodeSummarized, prints the timings
# and the estimated cost, and tears everything down (the bucket and the table too, which the
# template otherwise keeps).
#
#   infra/smoke.sh --stack podflow-smoke [--region us-east-1] [--keep] [--dry-run]
#
# --dry-run prints every command instead of running it (no credentials needed).
# --keep leaves the stack and its data in place. The Slack webhook parameter
# (/podflow/slack-webhook) is not needed: without it only the notifier fails, not the episode.
# Needs: aws CLI v2, sam, cargo-lambda (see docs/deploy.md), espeak-ng, ffmpeg, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

stack=""
region="${AWS_REGION:-us-east-1}"
keep=false
dry_run=false
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack="${2:-}"; shift 2 ;;
    --region) region="${2:-}"; shift 2 ;;
    --keep) keep=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "smoke: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$stack" ]; then
  echo "smoke: name the stack to deploy with --stack NAME (a new name: it is deleted at the end)" >&2
  exit 2
fi
if ! [[ "$stack" =~ ^[A-Za-z][A-Za-z0-9-]{0,100}$ ]]; then
  echo "smoke: --stack must be letters, digits and hyphens, starting with a letter (got '$stack')" >&2
  exit 2
fi

# run CMD...: runs it, or with --dry-run prints it (to stderr, so captures stay empty).
run() {
  if $dry_run; then
    { printf '+'; printf ' %q' "$@"; printf '\n'; } >&2
  else
    "$@"
  fi
}

# capture PLACEHOLDER CMD...: CMD's output, or with --dry-run the command printed and
# PLACEHOLDER as its output.
capture() {
  local placeholder="$1"
  shift
  if $dry_run; then
    run "$@"
    echo "$placeholder"
  else
    "$@"
  fi
}

# output NAME: a stack output (a placeholder in a dry run).
output() {
  if $dry_run; then
    echo "<$1>"
  else
    aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
      --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
  fi
}

step() { echo "smoke: $*" >&2; }

if ! $dry_run; then
  for tool in aws sam cargo-lambda espeak-ng ffmpeg python3; do
    command -v "$tool" >/dev/null || { echo "smoke: $tool is not installed (see docs/deploy.md)" >&2; exit 1; }
  done
fi

work="$(mktemp -d)"
tap=""
cleanup() {
  status=$?
  if [ -n "$tap" ]; then
    run aws events remove-targets --region "$region" --event-bus-name "$bus" --rule "$stack-smoke-tap" --ids tap >/dev/null || true
    run aws events delete-rule --region "$region" --event-bus-name "$bus" --name "$stack-smoke-tap" || true
    run aws sqs delete-queue --region "$region" --queue-url "$tap" || true
  fi
  if ! $keep; then
    step "tearing down $stack"
    run sam delete --region "$region" --stack-name "$stack" --no-prompts || true
    if [ -n "${bucket:-}" ]; then
      # Versioned: every version and delete marker goes before the bucket can.
      run python3 - "$bucket" "$region" <<'PY' || true
import json, subprocess, sys
bucket, region = sys.argv[1], sys.argv[2]
while True:
    out = json.loads(subprocess.check_output(["aws", "s3api", "list-object-versions", "--region", region, "--bucket", bucket, "--output", "json"]) or b"{}")
    items = [{"Key": v["Key"], "VersionId": v["VersionId"]} for k in ("Versions", "DeleteMarkers") for v in out.get(k) or []]
    if not items:
        break
    for i in range(0, len(items), 1000):
        subprocess.check_call(["aws", "s3api", "delete-objects", "--region", region, "--bucket", bucket, "--delete", json.dumps({"Objects": items[i:i + 1000]})], stdout=subprocess.DEVNULL)
PY
      run aws s3api delete-bucket --region "$region" --bucket "$bucket" || true
    fi
    [ -n "${table:-}" ] && { run aws dynamodb delete-table --region "$region" --table-name "$table" >/dev/null || true; }
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

started=$(date +%s)
step "building and deploying $stack in $region"
run sam build --config-file "$PWD/infra/samconfig.toml"
run sam deploy --config-file "$PWD/infra/samconfig.toml" --region "$region" --stack-name "$stack" \
  --no-confirm-changeset --no-fail-on-empty-changeset
deployed=$(date +%s)
bucket="$(output BucketName)"
bus="$(output EventBusName)"
table="$(output EpisodeTableName)"

step "listening for EpisodeSummarized on $bus"
tap="$(capture '<tap queue url>' aws sqs create-queue --region "$region" \
  --queue-name "$stack-smoke-tap" --query QueueUrl --output text)"
tap_arn="$(capture '<tap queue arn>' aws sqs get-queue-attributes --region "$region" \
  --queue-url "$tap" --attribute-names QueueArn --query Attributes.QueueArn --output text)"
rule_arn="$(capture '<rule arn>' aws events put-rule --region "$region" --event-bus-name "$bus" \
  --name "$stack-smoke-tap" --query RuleArn --output text \
  --event-pattern '{"source":["podflow.publisher"],"detail-type":["EpisodeSummarized"]}')"
# Only this rule may send to the queue.
policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"'"$tap_arn"'","Condition":{"ArnEquals":{"aws:SourceArn":"'"$rule_arn"'"}}}]}'
# As JSON: the CLI's shorthand syntax cannot carry a JSON value.
attributes="$(python3 -c 'import json, sys; print(json.dumps({"Policy": sys.argv[1]}))' "$policy")"
run aws sqs set-queue-attributes --region "$region" --queue-url "$tap" --attributes "$attributes"
run aws events put-targets --region "$region" --event-bus-name "$bus" --rule "$stack-smoke-tap" \
  --targets "Id=tap,Arn=$tap_arn" >/dev/null

step "uploading a 30-second episode"
episode="$work/smoke-episode.m4a"
run espeak-ng -s 150 -w "$work/speech.wav" "This is the podflow smoke test. We talk for thirty seconds about podcasts, microphones and the weekly news, so every step has something to work on. Thank you for listening, and see you next week."
run ffmpeg -loglevel error -y -i "$work/speech.wav" -af apad=whole_dur=30 -t 30 -c:a aac "$episode"
key="incoming/smoke-$(date +%s).m4a"
run aws s3 cp --region "$region" "$episode" "s3://$bucket/$key"
uploaded=$(date +%s)

step "waiting for EpisodeSummarized (15 minutes at most)"
summary=""
if $dry_run; then
  run aws sqs receive-message --region "$region" --queue-url "$tap" --wait-time-seconds 20
  summary='{"detail":{"revision":1,"status":"complete","cost":{"total_usd":0}}}'
else
  while [ $(( $(date +%s) - uploaded )) -lt 900 ]; do
    body="$(aws sqs receive-message --region "$region" --queue-url "$tap" --wait-time-seconds 20 \
      --query 'Messages[0].Body' --output text)"
    if [ -n "$body" ] && [ "$body" != "None" ]; then
      summary="$body"
      break
    fi
  done
fi
if [ -z "$summary" ]; then
  echo "smoke: no EpisodeSummarized within 15 minutes; see the alarms and docs/runbook.md" >&2
  exit 1
fi
done_at=$(date +%s)
if $dry_run; then
  step "dry run: nothing was deployed, uploaded or deleted"
  exit 0
fi
printf '%-28s %8s\n' "deploy" "$(( deployed - started )) s"
printf '%-28s %8s\n' "upload to EpisodeSummarized" "$(( done_at - uploaded )) s"
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1])["detail"]; print(eval(sys.argv[2]))' "$summary" "$1"; }
printf '%-28s %8s\n' "summary status" "$(field 'd.get("status")')"
printf '%-28s %8s\n' "estimated cost (USD)" "$(field '(d.get("cost") or {}).get("total_usd", "n/a")')"
