# The enforced policy: role-based access. A role grants a set of routes; the
# caller's tenant and the data's classification play no part — which is what
# the ABAC candidate (abac.rego) fixes.
package reports.rbac

# Routes each role may call.
role_grants := {
	"analyst": {"read-report"},
	"editor": {"read-report", "update-report"},
	"account_manager": {"read-report", "read-customer"},
	"data_steward": {"read-report", "read-customer", "export-customers"},
}

default allow := false

allow if {
	some role in input.subject.roles
	input.route.id in role_grants[role]
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": []} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

# concat, not %v: the wasm SDK's sprintf formats arrays differently from OPA's.
deny_reason := sprintf("none of the roles [%s] may call %s", [concat(", ", sort(input.subject.roles)), input.route.id])
