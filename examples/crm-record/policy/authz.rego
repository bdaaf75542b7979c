# crm-record: RFC 9396 grants, one record at a time.
#
# A route names the grant it needs in `input.route.attributes.grant`
# (see ../regate.yaml): a type, an action and, for routes about one record,
# which path parameter holds the record's identifier. The request is allowed
# when one of the token's `authorization_details` grants exactly that, and the
# grant has not expired.
#
# `customer_record` grants may carry a type-specific `expires_at` (NumericDate,
# seconds since the epoch, RFC 9396 §2 allows type-specific fields): the grant
# ends there even if the token lives on. The token's own `exp` is checked by
# regate before the policy runs (401 token_expired).
package crm.authz

import data.regate.lib.authzdetails
import data.regate.lib.timewindow

# The RFC 9396 request object this call needs, built from the route's attributes.
wanted := object.union(
	{"type": input.route.attributes.grant.type, "action": input.route.attributes.grant.action},
	record_identifier,
)

record_identifier := {"identifier": input.request.params[param]} if {
	param := input.route.attributes.grant.identifier_param
} else := {}

# Grants of the token that cover `wanted` and are still valid.
valid_grants := [d | some d in authzdetails.granting(wanted); not expired(d)]

# A grant with an expires_at is valid strictly before it. A malformed value
# (not a number) makes `before` undefined, so the grant counts as expired.
expired(detail) if {
	"expires_at" in object.keys(detail)
	not timewindow.before(detail.expires_at)
}

default allow := false

allow if {
	input.subject.authenticated
	count(valid_grants) > 0
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": [sprintf("authorization_details grant: %s", [describe(wanted)])]} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

# The first reason that applies, most fundamental first.
deny_reason := "request is not authenticated" if {
	not input.subject.authenticated
} else := "the token carries no authorization_details" if {
	count(authzdetails.details) == 0
} else := sprintf("the grant for %s has expired", [describe(wanted)]) if {
	count(authzdetails.granting(wanted)) > 0
} else := sprintf("no authorization_details grant covers %s", [describe(wanted)])

# "update on customer_record cust-123"
describe(w) := sprintf("%s on %s %s", [w.action, w.type, w.identifier]) if {
	w.identifier
} else := sprintf("%s on %s", [w.action, w.type])
