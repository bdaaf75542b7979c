# The candidate policy: RBAC plus attributes. It keeps every rule of the
# enforced policy (the role must grant the route) and adds two:
#
#   tenant       the caller's `tenant` claim must be the path's {tenant};
#   clearance    the caller's `clearance` claim must cover the route's
#                `classification` attribute (public < internal < confidential
#                < restricted). A token without the claim has `internal`, the
#                clearance every employee has.
#
# The first failing check is the reason given.
package reports.abac

import data.reports.rbac

levels := {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}

clearance := object.get(input.token, "clearance", "internal")

classification := input.route.attributes.classification

same_tenant if input.subject.tenant == input.request.params.tenant

cleared if levels[clearance] >= levels[classification]

default allow := false

allow if {
	rbac.allow
	same_tenant
	cleared
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": []} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

deny_reason := rbac.deny_reason if not rbac.allow

else := sprintf("tenant isolation: a %s token may not access tenant %s", [input.subject.tenant, input.request.params.tenant]) if not same_tenant

else := sprintf("%s data needs clearance %s; the caller has %s", [classification, classification, clearance])
