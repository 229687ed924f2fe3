#!/bin/sh
# One-shot (temporalio/admin-tools): once the server answers, create the namespace and
# register the search attributes the workflows set (volume_manage/shared/search.py
# REGISTERED, given here as SEARCH_ATTRIBUTES="Name=Type ..."; tests/test_compose.py keeps
# the two equal).
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${NAMESPACE:-default}"

echo "waiting for Temporal at ${ADDRESS}"
tries=0
until temporal operator cluster health --address "${ADDRESS}" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "${tries}" -ge 60 ]; then echo "Temporal did not become healthy" >&2; exit 1; fi
  sleep 2
done

temporal operator namespace describe --address "${ADDRESS}" -n "${NAMESPACE}" >/dev/null 2>&1 \
  || temporal operator namespace create --address "${ADDRESS}" -n "${NAMESPACE}" --retention 30d

existing="$(temporal operator search-attribute list --address "${ADDRESS}" -n "${NAMESPACE}")"
for pair in ${SEARCH_ATTRIBUTES}; do
  name="${pair%%=*}"; kind="${pair##*=}"
  if printf '%s\n' "${existing}" | grep -qw "${name}"; then
    echo "search attribute ${name} already registered"
  else
    temporal operator search-attribute create --address "${ADDRESS}" -n "${NAMESPACE}" \
      --name "${name}" --type "${kind}"
  fi
done
echo "namespace ${NAMESPACE} and search attributes ready"
