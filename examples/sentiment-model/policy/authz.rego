# sentiment-model: role-based access to a sentiment-analysis model API.
#
#   data_scientist  may call predict;
#   ml_engineer     may call predict and read metadata and logs;
#   anyone else     is denied, authenticated or not.
#
# Permissions are keyed by route id (see ../regate.yaml), so a route added to
# the config is denied to everybody until a line here grants it. This is the
# quickstart's policy (examples/quickstart/policy) in its own package.
package sentiment.authz

# Route ids each role may call.
role_permissions := {
	"data_scientist": {"predict"},
	"ml_engineer": {"predict", "metadata", "logs"},
}

# Every role of the caller that grants this route.
granting_roles contains role if {
	input.subject.authenticated
	some role in input.subject.roles
	input.route.id in role_permissions[role]
}

default allow := false

allow if count(granting_roles) > 0

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": [sprintf("role %s may call %s", [role, input.route.id]) | some role in sort(granting_roles)]} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

deny_reason := "request is not authenticated" if {
	not input.subject.authenticated
} else := sprintf("no role may call %s", [input.route.id]) if {
	count(input.subject.roles) == 0
} else := sprintf("none of the roles [%s] may call %s", [concat(", ", sort(input.subject.roles)), input.route.id])
