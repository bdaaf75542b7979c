# Quickstart policy: role-based access to a sentiment-analysis model API.
#
#   data scientists  may call predict;
#   ML engineers     may call predict and read metadata and logs;
#   everyone else    is denied.
#
# The entrypoint `regate/authz/decision` returns the object regate expects:
# {allow, reasons}. Permissions are keyed by route id (see ../regate.yaml), so
# a new route is denied to everybody until a line here grants it.
package regate.authz

# Route ids each role may call.
role_permissions := {
	"data_scientist": {"predict"},
	"ml_engineer": {"predict", "metadata", "logs"},
}

default allow := false

allow if {
	some role in input.subject.roles
	input.route.id in role_permissions[role]
}

# Why a request was allowed: every role that grants this route.
# concat, not sprintf: concat runs inside the wasm module; sprintf is a JavaScript
# builtin of the SDK with a JSON round trip per call (bench/README.md).
grants contains concat(" ", ["role", role, "may call", input.route.id]) if {
	some role in input.subject.roles
	input.route.id in role_permissions[role]
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": sort(grants)} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

deny_reason := "request is not authenticated" if not input.subject.authenticated

deny_reason := msg if {
	input.subject.authenticated

	# concat, not sprintf with %v: cheaper in wasm, and the SDK's sprintf formats arrays differently from OPA's.
	msg := concat("", ["none of the roles [", concat(", ", sort(input.subject.roles)), "] may call ", input.route.id])
}
