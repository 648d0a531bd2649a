#!/usr/bin/env bash
# kuala-apiserver over HTTPS with a generated self-signed certificate and
# bearer-token auth: the kubeconfig it writes carries the CA and the token,
# kubectl and curl verify the certificate, wrong or missing tokens get 401.
source "$(dirname "$0")/lib/emulator_lib.sh"

if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
  echo "SKIP: needs curl and jq (scripts/deps.sh installs them)"; exit 77
fi

emu_start --tls --token s3cret
expect_contains "https URL" "$EMU_URL" "https://127.0.0.1:"
kc=$EMU_DIR/kubeconfig
grep 'certificate-authority-data' "$kc" | awk '{print $2}' | base64 -d >"$EMU_DIR/ca.pem"
expect_contains "kubeconfig carries the CA" "$(cat "$EMU_DIR/ca.pem")" "BEGIN CERTIFICATE"
expect_contains "kubeconfig carries the token" "$(cat "$kc")" "token: s3cret"

c=$(curl -s -m 5 --cacert "$EMU_DIR/ca.pem" -o "$EMU_DIR/r" -w '%{http_code}' "$EMU_URL/api/v1/namespaces")
expect_eq "no token: 401" "$c" "401"
expect_eq "401 is a Status" "$(jq -r .reason "$EMU_DIR/r")" "Unauthorized"
c=$(curl -s -m 5 --cacert "$EMU_DIR/ca.pem" -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$EMU_URL/api/v1/namespaces")
expect_eq "wrong token: 401" "$c" "401"
c=$(curl -s -m 5 --cacert "$EMU_DIR/ca.pem" -o "$EMU_DIR/r" -w '%{http_code}' -H 'Authorization: Bearer s3cret' "$EMU_URL/api/v1/namespaces")
expect_eq "right token over verified TLS: 200" "$c" "200"
expect_eq "namespaces listed" "$(jq '.items | length' "$EMU_DIR/r")" "4"
# A watch streams over TLS too.
curl -s -N -m 3 --cacert "$EMU_DIR/ca.pem" -H 'Authorization: Bearer s3cret' \
  "$EMU_URL/api/v1/namespaces?watch=true&timeoutSeconds=1" >"$EMU_DIR/w"
expect_eq "watch over TLS" "$(jq -r .type "$EMU_DIR/w" | sort -u)" "ADDED"
c=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$EMU_URL/version")
expect_eq "unverified client is refused by curl" "$c" "000"

if command -v kubectl >/dev/null; then
  export KUBECONFIG=$kc KUBECACHEDIR=$EMU_DIR/kubecache
  out=$(kubectl --request-timeout=20s get ns -o name 2>&1)
  expect_contains "kubectl over TLS with token" "$out" "namespace/default"
  out=$(kubectl --request-timeout=20s create configmap via-protobuf --from-literal=a=b 2>&1)
  expect_contains "kubectl create configmap (protobuf body)" "$out" "configmap/via-protobuf created"
  expect_eq "protobuf body stored" "$(kubectl get cm via-protobuf -o jsonpath='{.data.a}')" "b"
fi
finish
